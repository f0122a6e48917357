"""Merkle tree math in govshare.transparency.merkle, against RFC 6962's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govshare.transparency.merkle import (
    EMPTY_ROOT,
    Coord,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_for_consistency,
    nodes_for_inclusion,
    root_at,
    root_from_leaf_hashes,
    split_stored_index,
    stored_index,
    verify_consistency,
    verify_inclusion,
)

MAX_LEAVES = 300


# RFC 6962 §2.1 written as literally as possible: the oracle the fast code must agree with.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
    if m == len(d):
        return [] if whole else [rfc_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*rfc_subproof(m, d[:k], whole), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


class Store:
    """In-memory perfect-subtree store that records each fetch."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[Coord, bytes] = {}
        self.calls: list[list[Coord]] = []
        frontier = Frontier()
        for leaf in leaves:
            self.nodes.update(((level, i), h) for level, i, h in frontier.append(leaf))

    def fetch(self, coords: list[Coord]) -> list[bytes]:
        self.calls.append(coords)
        return [self.nodes[c] for c in coords]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x80]) + data[index + 1 :]


def _flipped_proofs(proof: list[bytes]):
    for i, element in enumerate(proof):
        for j in range(len(element)):
            yield [*proof[:i], _flip(element, j), *proof[i + 1 :]]


leaf_counts = st.integers(min_value=1, max_value=MAX_LEAVES)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(leaf_counts)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(leaf_counts)
    return draw(st.integers(min_value=1, max_value=n)), n


LEAVES = _leaves(MAX_LEAVES)
STORE = Store(LEAVES)


def test_hash_domain_separation() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert leaf_hash(b"\x01ab") != node_hash(b"a", b"b")


@pytest.mark.parametrize("size", range(0, 70))
def test_roots_agree_with_rfc_definition(size: int) -> None:
    expected = rfc_mth(LEAVES[:size])
    assert root_from_leaf_hashes(LEAVES[:size]) == expected
    assert root_at(size, STORE.fetch) == expected
    assert Frontier.for_size(size, STORE.fetch).root() == expected


@pytest.mark.parametrize("size", range(1, 40))
def test_proofs_are_exactly_rfc_6962_proofs(size: int) -> None:
    d = LEAVES[:size]
    for index in range(size):
        assert inclusion_proof(index, size, STORE.fetch) == rfc_path(index, d)
    for m in range(1, size + 1):
        assert consistency_proof(m, size, STORE.fetch) == rfc_subproof(m, d, True)


@given(size=leaf_counts)
def test_frontier_root_matches_every_prefix(size: int) -> None:
    frontier = Frontier()
    for n, leaf in enumerate(LEAVES[:size], start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == root_from_leaf_hashes(LEAVES[:n])


@given(size=leaf_counts)
def test_append_reports_exactly_the_completed_perfect_subtrees(size: int) -> None:
    frontier = Frontier.for_size(size - 1, STORE.fetch)
    completed = frontier.append(LEAVES[size - 1])
    assert completed[0] == (0, size - 1, LEAVES[size - 1])
    for level, index, h in completed:
        assert (index + 1) << level == size  # ends at the new leaf
        assert h == root_from_leaf_hashes(LEAVES[index << level : (index + 1) << level])
    assert len(completed) == 1 + (size & -size).bit_length() - 1


def test_stored_indices_number_the_nodes_in_the_order_appends_complete_them() -> None:
    frontier, order = Frontier(), []
    for _ in range(1 << 12):
        order += [(level, index) for level, index, _ in frontier.append(bytes(32))]
    assert [stored_index(*coord) for coord in order] == list(range(len(order)))
    assert [split_stored_index(i) for i in range(len(order))] == order
    # 26 hashes precede leaf 15's (15 + 7 + 3 + 1); then come (1, 7) and (2, 3).
    assert stored_index(2, 3) == 28 and stored_index(0, 1 << 40) == (1 << 41) - 1


@given(case=tree_and_index())
def test_inclusion_proofs_verify_and_every_flipped_byte_fails(case: tuple[int, int]) -> None:
    size, index = case
    root = root_at(size, STORE.fetch)
    proof = inclusion_proof(index, size, STORE.fetch)
    verify_inclusion(LEAVES[index], index, size, proof, root)
    for bad in _flipped_proofs(proof):
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], index, size, bad, root)
    for j in range(32):
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], index, size, proof, _flip(root, j))
        with pytest.raises(ProofError):
            verify_inclusion(_flip(LEAVES[index], j), index, size, proof, root)


@given(case=two_sizes())
def test_consistency_proofs_verify_and_every_flipped_byte_fails(case: tuple[int, int]) -> None:
    m, n = case
    root1, root2 = root_at(m, STORE.fetch), root_at(n, STORE.fetch)
    proof = consistency_proof(m, n, STORE.fetch)
    verify_consistency(m, n, proof, root1, root2)
    for bad in _flipped_proofs(proof):
        with pytest.raises(ProofError):
            verify_consistency(m, n, bad, root1, root2)
    for j in range(32):
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, _flip(root1, j), root2)
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, root1, _flip(root2, j))


@given(case=tree_and_index())
def test_inclusion_proof_with_missing_or_extra_elements_fails(case: tuple[int, int]) -> None:
    size, index = case
    root = root_at(size, STORE.fetch)
    proof = inclusion_proof(index, size, STORE.fetch)
    for bad in ([*proof, root], [root, *proof], proof[:-1], proof[1:]):
        if bad != proof:
            with pytest.raises(ProofError):
                verify_inclusion(LEAVES[index], index, size, bad, root)


@given(case=two_sizes())
def test_consistency_proof_with_missing_or_extra_elements_fails(case: tuple[int, int]) -> None:
    m, n = case
    root1, root2 = root_at(m, STORE.fetch), root_at(n, STORE.fetch)
    proof = consistency_proof(m, n, STORE.fetch)
    for bad in ([*proof, root1], [root1, *proof], proof[:-1], proof[1:]):
        if bad != proof:
            with pytest.raises(ProofError):
                verify_consistency(m, n, bad, root1, root2)


@given(case=tree_and_index())
def test_proof_against_another_size_or_index_fails(case: tuple[int, int]) -> None:
    size, index = case
    proof = inclusion_proof(index, size, STORE.fetch)
    root = root_at(size, STORE.fetch)
    for other_index, other_size in ((index + 1, size), (index - 1, size), (index, size + 1)):
        if 0 <= other_index < other_size <= MAX_LEAVES:
            other_root = root_at(other_size, STORE.fetch)
            with pytest.raises(ProofError):
                verify_inclusion(LEAVES[index], other_index, other_size, proof, other_root)
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index, size * 2, proof, root)


@given(case=tree_and_index())
def test_one_fetch_of_logarithmically_many_nodes(case: tuple[int, int]) -> None:
    size, index = case
    store = Store(LEAVES[:size])
    inclusion_proof(index, size, store.fetch)
    consistency_proof(index + 1, size, store.fetch)
    coords_inclusion = nodes_for_inclusion(index, size)
    coords_consistency = nodes_for_consistency(index + 1, size)
    assert store.calls == [c for c in (coords_inclusion, coords_consistency) if c]
    for coords in (coords_inclusion, coords_consistency):
        assert len(coords) == len(set(coords)) <= 2 * size.bit_length()


def test_single_leaf_and_equal_sizes_need_no_fetch() -> None:
    def fetch(coords: list[Coord]) -> list[bytes]:
        raise AssertionError(f"unexpected fetch of {coords}")

    assert inclusion_proof(0, 1, fetch) == []
    assert consistency_proof(5, 5, fetch) == []
    assert root_at(0, fetch) == EMPTY_ROOT
    assert Frontier.for_size(0, fetch).root() == EMPTY_ROOT


def test_fetch_returning_the_wrong_number_of_hashes_is_an_error() -> None:
    with pytest.raises(ValueError, match="fetch returned"):
        inclusion_proof(0, 8, lambda coords: [])


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (4, 3), (-1, 3), (0, -1)], ids=str)
def test_inclusion_arguments_are_checked(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        nodes_for_inclusion(index, size)
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[0], index, size, [], EMPTY_ROOT)


@pytest.mark.parametrize(("m", "n"), [(0, 0), (0, 5), (6, 5), (-1, 5), (1, -1)], ids=str)
def test_consistency_arguments_are_checked(m: int, n: int) -> None:
    with pytest.raises(ValueError):
        nodes_for_consistency(m, n)
    with pytest.raises(ProofError):
        verify_consistency(m, n, [], EMPTY_ROOT, EMPTY_ROOT)


def test_negative_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        root_at(-1, STORE.fetch)
    with pytest.raises(ValueError):
        Frontier.for_size(-1, STORE.fetch)


def test_leaf_must_be_a_hash() -> None:
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(b"", 0, 1, [], b"")


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    root = root_at(5, STORE.fetch)
    verify_consistency(5, 5, [], root, root)
    with pytest.raises(ProofError):
        verify_consistency(5, 5, [root], root, root)
    with pytest.raises(ProofError):
        verify_consistency(5, 5, [], root, EMPTY_ROOT)
