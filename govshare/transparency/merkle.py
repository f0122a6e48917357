"""RFC 6962 / RFC 9162 Merkle tree math, independent of storage.

A tree is stored as its *perfect subtrees*: the node ``(level, index)`` is the hash of the 2**level
leaves starting at leaf ``index * 2**level`` (level 0 holds the leaf hashes). Those nodes never
change once complete, so the store appends them and never rewrites. Any range RFC 6962 needs
(``MTH(D[a:b])``) splits into O(log n) perfect subtrees at the largest power of two, so a root or a
proof costs one batched lookup of O(log n) nodes and a little local hashing, never a rebuild.

Generators take ``fetch(coords) -> hashes``, called once per proof with every coordinate needed,
so a database answers with a single query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from govshare.signing import sha256

Coord = tuple[int, int]
"""A perfect subtree as ``(level, index)``."""

Fetch = Callable[[list[Coord]], Sequence[bytes]]
"""Returns the stored hash of every requested perfect subtree, in the order requested."""

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = sha256(b"")
"""Root of the empty tree (RFC 6962 MTH({}))."""


class ProofError(Exception):
    """An inclusion or consistency proof failed to verify."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf; the 0x00 prefix keeps leaves and interior nodes apart."""
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node."""
    return sha256(b"\x01" + left + right)


def stored_index(level: int, idx: int) -> int:
    """Where the perfect subtree ``(level, idx)`` goes in append order (the order of Go's
    ``tlog.StoredHashIndex``): each leaf's hash, then every subtree that leaf completes, lowest
    first. A store keyed by it only ever appends, and the nodes under any aligned range of
    leaves sit in one contiguous run."""
    n = ((idx + 1) << level) - 1  # the last leaf under the subtree
    return 2 * n - n.bit_count() + level  # sum(n >> k for k >= 0) hashes come before leaf n's


def split_stored_index(index: int) -> Coord:
    """The ``(level, idx)`` stored at ``index``: the inverse of `stored_index`."""
    if index < 0:
        raise ValueError(f"stored index must not be negative (got {index})")
    leaf = index // 2  # stored_index(0, n) <= 2n: the leaf is at most log2 leaves further
    start = stored_index(0, leaf)
    while True:
        # Leaf n adds its hash and one per trailing one bit of n (the subtrees it completes).
        following = start + 1 + ((leaf + 1) & -(leaf + 1)).bit_length() - 1
        if following > index:
            break
        leaf, start = leaf + 1, following
    level = index - start
    return level, leaf >> level


def _split(size: int) -> int:
    """Largest power of two strictly smaller than ``size`` (``size`` > 1): RFC 6962's k."""
    return 1 << ((size - 1).bit_length() - 1)


def _perfect(begin: int, end: int) -> list[Coord]:
    """Perfect subtrees covering leaves [begin, end), left to right.

    Every range RFC 6962 asks for starts at a multiple of its largest piece, so greedily taking
    the largest power of two gives exactly the subtrees of MTH's own split.
    """
    coords = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        coords.append((level, begin >> level))
        begin += 1 << level
    return coords


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of adjacent perfect subtrees listed largest first: hash them from the right."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _fetch(fetch: Fetch, coords: list[Coord]) -> Sequence[bytes]:
    """Call ``fetch`` once (not at all for nothing) and insist on one hash per node."""
    if not coords:
        return []
    hashes = fetch(coords)
    if len(hashes) != len(coords):
        raise ValueError(f"fetch returned {len(hashes)} hashes for {len(coords)} nodes")
    return hashes


def _resolve(groups: list[list[Coord]], fetch: Fetch) -> list[bytes]:
    """One fetch for all groups, then each group folded into one proof element."""
    hashes = _fetch(fetch, [coord for group in groups for coord in group])
    proof, start = [], 0
    for group in groups:
        proof.append(_fold(hashes[start : start + len(group)]))
        start += len(group)
    return proof


def _inclusion_ranges(index: int, size: int) -> list[list[Coord]]:
    """RFC 6962 PATH(index, D[0:size]) as one group of perfect subtrees per proof element."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append(_perfect(lo + k, hi))
            hi = lo + k
        else:
            ranges.append(_perfect(lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(m: int, n: int) -> list[list[Coord]]:
    """RFC 6962 PROOF(m, D[0:n]) as one group of perfect subtrees per proof element."""
    if m < 0 or n < 0:
        raise ValueError(f"tree sizes must not be negative (got {m}, {n})")
    if m == 0:
        raise ValueError("a consistency proof from the empty tree is not meaningful (size1 == 0)")
    if m > n:
        raise ValueError(f"size1 {m} is larger than size2 {n}")
    ranges = []
    lo, hi, whole = 0, n, True
    while m != hi:
        k = _split(hi - lo)
        if m <= lo + k:
            ranges.append(_perfect(lo + k, hi))
            hi = lo + k
        else:
            ranges.append(_perfect(lo, lo + k))
            lo, whole = lo + k, False
    if not whole:
        ranges.append(_perfect(lo, hi))
    ranges.reverse()
    return ranges


def nodes_for_inclusion(index: int, size: int) -> list[Coord]:
    """Perfect subtrees an inclusion proof of leaf ``index`` in a tree of ``size`` reads."""
    return [coord for group in _inclusion_ranges(index, size) for coord in group]


def inclusion_proof(index: int, size: int, fetch: Fetch) -> list[bytes]:
    """RFC 6962 audit path of leaf ``index`` in the tree of ``size`` leaves."""
    return _resolve(_inclusion_ranges(index, size), fetch)


def nodes_for_consistency(m: int, n: int) -> list[Coord]:
    """Perfect subtrees a consistency proof from size ``m`` to size ``n`` reads."""
    return [coord for group in _consistency_ranges(m, n) for coord in group]


def consistency_proof(m: int, n: int, fetch: Fetch) -> list[bytes]:
    """RFC 6962 consistency proof that the tree of ``m`` leaves is a prefix of that of ``n``."""
    return _resolve(_consistency_ranges(m, n), fetch)


def root_at(size: int, fetch: Fetch) -> bytes:
    """Root hash of the first ``size`` leaves, from at most log2(size)+1 stored nodes."""
    if size < 0:
        raise ValueError(f"tree size must not be negative (got {size})")
    if size == 0:
        return EMPTY_ROOT
    return _resolve([_perfect(0, size)], fetch)[0]


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """RFC 6962 MTH of all leaves, level by level (an odd last node moves up unchanged)."""
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        carry = [level[-1]] if len(level) % 2 else []
        level = [
            sha256(b"\x01" + a + b) for a, b in zip(level[::2], level[1::2], strict=False)
        ] + carry
    return level[0]


class Frontier:
    """The right edge of a growing tree: the perfect subtrees covering all leaves so far.

    Appending touches O(1) amortised hashes and reports the nodes it completes, which is all a
    store must write; the root is O(log n) hashes away at any time.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self._size = 0

    @classmethod
    def for_size(cls, size: int, fetch: Fetch) -> Frontier:
        """Frontier of an existing tree, rebuilt from its stored perfect subtrees."""
        if size < 0:
            raise ValueError(f"tree size must not be negative (got {size})")
        frontier = cls()
        frontier._hashes = list(_fetch(fetch, _perfect(0, size)))
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns every perfect subtree it completes as (level, index, hash)."""
        index = self._size
        completed = [(0, index, leaf)]
        node, level = leaf, 0
        while (index >> level) & 1:
            node = node_hash(self._hashes.pop(), node)
            level += 1
            completed.append((level, index >> level, node))
        self._hashes.append(node)
        self._size += 1
        return completed

    def root(self) -> bytes:
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless ``proof`` puts ``leaf`` at ``index``.

    The leaf must be a hash (32 bytes): otherwise a one-leaf tree would "prove" any value
    equal to its root, including an empty one.
    """
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof has too many elements")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof has too few elements")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless tree ``size1`` is a prefix of tree ``size2``.

    A proof from the empty tree proves nothing, so ``size1 == 0`` is rejected even when
    ``size2 == 0``, as the published vectors expect.
    """
    if size1 <= 0 or size2 < size1:
        raise ProofError(f"no consistency proof exists from size {size1} to size {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError("roots differ for the same tree size")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof has too many elements")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof has too few elements")
    if fr != root1 or sr != root2:
        raise ProofError("consistency proof does not lead to both root hashes")
