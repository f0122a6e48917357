"""RFC 6962 trees and proofs checked against transparency-dev/merkle's published vectors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from govshare.transparency.merkle import (
    Coord,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SIZES = range(9)


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in vector["proof"] or []]


def _leaf_hashes(tree: dict[str, Any]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(h)) for h in tree["leaf_inputs_hex"]]


def _roots(tree: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(h) for h in tree["root_hash_by_tree_size_hex"]]


@pytest.fixture
def store(reference_tree: dict[str, Any]) -> dict[Coord, bytes]:
    """Every perfect subtree of the 8-leaf reference tree, as a storage layer would keep them."""
    nodes: dict[Coord, bytes] = {}
    frontier = Frontier()
    for leaf in _leaf_hashes(reference_tree):
        nodes.update(((level, index), h) for level, index, h in frontier.append(leaf))
    return nodes


def _fetcher(store: dict[Coord, bytes]):
    return lambda coords: [store[c] for c in coords]


def _is_reference(size: int, root: bytes, tree: dict[str, Any]) -> bool:
    return size < len(_roots(tree)) and _roots(tree)[size] == root


def test_inclusion_vector(
    inclusion_vector: dict[str, Any], reference_tree: dict[str, Any], store: dict[Coord, bytes]
) -> None:
    """Wrong proofs are rejected; right ones verify and, over the reference tree, are ours."""
    v = inclusion_vector
    index, size, proof, root = v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(_b64(v["leafHash"]), index, size, proof, root)
        return
    verify_inclusion(_b64(v["leafHash"]), index, size, proof, root)
    if _is_reference(size, root, reference_tree):
        assert inclusion_proof(index, size, _fetcher(store)) == proof


def test_consistency_vector(
    consistency_vector: dict[str, Any], reference_tree: dict[str, Any], store: dict[Coord, bytes]
) -> None:
    v = consistency_vector
    m, n, proof = v["size1"], v["size2"], _proof(v)
    root1, root2 = _b64(v["root1"]), _b64(v["root2"])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, root1, root2)
        return
    verify_consistency(m, n, proof, root1, root2)
    if _is_reference(n, root2, reference_tree):
        assert consistency_proof(m, n, _fetcher(store)) == proof


@pytest.mark.parametrize("size", SIZES)
def test_reference_root_from_leaf_hashes(reference_tree: dict[str, Any], size: int) -> None:
    leaves = _leaf_hashes(reference_tree)[:size]
    assert root_from_leaf_hashes(leaves) == _roots(reference_tree)[size]


def test_reference_roots_by_frontier_appends(reference_tree: dict[str, Any]) -> None:
    frontier = Frontier()
    roots = [frontier.root()]
    for leaf in _leaf_hashes(reference_tree):
        frontier.append(leaf)
        roots.append(frontier.root())
    assert roots == _roots(reference_tree)


@pytest.mark.parametrize("size", SIZES)
def test_reference_root_at(
    reference_tree: dict[str, Any], store: dict[Coord, bytes], size: int
) -> None:
    assert root_at(size, _fetcher(store)) == _roots(reference_tree)[size]
    assert Frontier.for_size(size, _fetcher(store)).root() == _roots(reference_tree)[size]


@pytest.mark.parametrize("size", SIZES[1:])
def test_generated_inclusion_proofs_verify(
    reference_tree: dict[str, Any], store: dict[Coord, bytes], size: int
) -> None:
    leaves, root = _leaf_hashes(reference_tree), _roots(reference_tree)[size]
    for index in range(size):
        proof = inclusion_proof(index, size, _fetcher(store))
        verify_inclusion(leaves[index], index, size, proof, root)


@pytest.mark.parametrize("n", SIZES[1:])
def test_generated_consistency_proofs_verify(
    reference_tree: dict[str, Any], store: dict[Coord, bytes], n: int
) -> None:
    roots = _roots(reference_tree)
    for m in range(1, n + 1):
        proof = consistency_proof(m, n, _fetcher(store))
        verify_consistency(m, n, proof, roots[m], roots[n])
