# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-block change digests (pure, no I/O).

`block_digest(buf)` is the xxh3-128 of the plain block (16 bytes). A `DigestMap` holds one digest per block of a
disk (the last block may be short) plus a "known" flag per block; blocks never digested are unknown and compare as
different from everything. Serialized form (little-endian):

    magic b'RVDMAP01', u64 capacity, u32 block_size, u32 block count, u32 algorithm (1 = xxh3-128), u32 reserved,
    known flags (1 byte per block), digests (16 bytes per block), u64 xxh3-64 of everything before it
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import struct

try:
    import xxhash
    HAS_XXHASH = True
except ImportError:
    xxhash = None
    HAS_XXHASH = False

DIGEST_SIZE = 16
ALGO_XXH3_128 = 1
MAGIC = b'RVDMAP01'
_HEADER = struct.Struct('<8sQIIII')
_TRAILER = struct.Struct('<Q')
MIN_BLOCK = 4096
MAX_BLOCK = 64 * 1024 * 1024
_NO_DIGEST = bytes(DIGEST_SIZE)
_zero_digests = {}


class DigestError(Exception):
    """Invalid digest map or block geometry."""


def require_xxhash():
    if not HAS_XXHASH:
        raise DigestError('the python library xxhash is required for block digests (pip install xxhash)')


def block_digest(buf):
    """xxh3-128 digest (16 bytes) of a bytes-like block."""
    return xxhash.xxh3_128_digest(buf)


def zero_digest(length):
    """Digest of `length` zero bytes (cached per length)."""
    d = _zero_digests.get(length)
    if d is None:
        d = block_digest(bytes(length))
        _zero_digests[length] = d
    return d


def changed_ranges(old, new, page=4096, chunk=64 * 1024):
    """(start, length) runs, relative to the buffers and coalesced, of the `page`-sized pieces where `new` differs
    from `old` (two bytes-like objects of the same length; the last piece may be short). Pure.

    Compares `chunk`-sized pieces first and pages only inside the differing ones; slices are compared as bytes
    (a memcmp: comparing memoryviews element by element is ~25x slower). ~0.1 ms per MiB."""
    n = len(new)
    if len(old) != n or page <= 0 or chunk % page:
        raise ValueError('changed_ranges needs buffers of one length and a chunk that is a multiple of the page')
    o = memoryview(old).cast('B')
    w = memoryview(new).cast('B')
    out = []
    for cs in range(0, n, chunk):
        ce = min(n, cs + chunk)
        if o[cs:ce].tobytes() == w[cs:ce].tobytes():
            continue
        for ps in range(cs, ce, page):
            pe = min(ce, ps + page)
            if o[ps:pe].tobytes() == w[ps:pe].tobytes():
                continue
            if out and out[-1][0] + out[-1][1] == ps:
                out[-1] = (out[-1][0], pe - out[-1][0])
            else:
                out.append((ps, pe - ps))
    return out


def check_geometry(capacity, block_size):
    if not isinstance(capacity, int) or capacity < 0:
        raise DigestError('capacity must be a non-negative integer, got %r' % (capacity,))
    if not isinstance(block_size, int) or block_size < MIN_BLOCK or block_size > MAX_BLOCK or block_size & (block_size - 1):
        raise DigestError('block size must be a power of two between %d and %d, got %r' % (MIN_BLOCK, MAX_BLOCK, block_size))


def block_count(capacity, block_size):
    return (capacity + block_size - 1) // block_size


class DigestMap(object):
    """One digest per block of a disk of `capacity` bytes cut in `block_size` blocks."""

    def __init__(self, capacity, block_size):
        check_geometry(capacity, block_size)
        self.capacity = capacity
        self.block_size = block_size
        self.count = block_count(capacity, block_size)
        self._known = bytearray(self.count)
        self._digests = bytearray(self.count * DIGEST_SIZE)

    def block_length(self, index):
        return min(self.block_size, self.capacity - index * self.block_size)

    def _check(self, index):
        if index < 0 or index >= self.count:
            raise DigestError('block index %d is outside the map (%d blocks)' % (index, self.count))

    def get(self, index):
        """Digest of block `index` (bytes) or None when unknown."""
        self._check(index)
        if not self._known[index]:
            return None
        return bytes(self._digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE])

    def set(self, index, digest):
        self._check(index)
        if len(digest) != DIGEST_SIZE:
            raise DigestError('a digest is %d bytes, got %d' % (DIGEST_SIZE, len(digest)))
        self._digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE] = digest
        self._known[index] = 1

    def forget(self, index):
        self._check(index)
        self._known[index] = 0
        self._digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE] = _NO_DIGEST

    def is_known(self, index):
        self._check(index)
        return bool(self._known[index])

    def known_count(self):
        return self.count - self._known.count(0)

    def matches(self, index, digest):
        """True when block `index` is known and equals digest."""
        if not self._known[index]:
            return False
        start = index * DIGEST_SIZE
        return self._digests[start:start + DIGEST_SIZE] == digest

    def items(self):
        """(index, digest) for every known block."""
        known = self._known
        digests = self._digests
        for i in range(self.count):
            if known[i]:
                yield i, bytes(digests[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE])

    def compatible(self, other):
        return other is not None and self.capacity == other.capacity and self.block_size == other.block_size

    def diff(self, other):
        """Indexes of blocks that differ between two maps of the same geometry (unknown on either side = differ)."""
        if not self.compatible(other):
            raise DigestError('digest maps of different geometry cannot be compared (%d/%d vs %d/%d)'
                              % (self.capacity, self.block_size, getattr(other, 'capacity', -1),
                                 getattr(other, 'block_size', -1)))
        out = []
        a, b, ka, kb = self._digests, other._digests, self._known, other._known
        for i in range(self.count):
            s = i * DIGEST_SIZE
            if not (ka[i] and kb[i]) or a[s:s + DIGEST_SIZE] != b[s:s + DIGEST_SIZE]:
                out.append(i)
        return out

    def __eq__(self, other):
        return (isinstance(other, DigestMap) and self.compatible(other) and self._known == other._known
                and self._digests == other._digests)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def copy(self):
        m = DigestMap(self.capacity, self.block_size)
        m._known[:] = self._known
        m._digests[:] = self._digests
        return m

    def to_bytes(self):
        head = _HEADER.pack(MAGIC, self.capacity, self.block_size, self.count, ALGO_XXH3_128, 0)
        body = b''.join((head, bytes(self._known), bytes(self._digests)))
        return body + _TRAILER.pack(xxhash.xxh3_64_intdigest(body))

    @classmethod
    def from_bytes(cls, blob):
        blob = bytes(blob)
        if len(blob) < _HEADER.size + _TRAILER.size:
            raise DigestError('digest map is truncated (%d bytes)' % len(blob))
        magic, capacity, block_size, count, algo, _reserved = _HEADER.unpack_from(blob, 0)
        if magic != MAGIC:
            raise DigestError('not a digest map (bad magic)')
        if algo != ALGO_XXH3_128:
            raise DigestError('digest map uses unknown algorithm %d' % algo)
        check_geometry(capacity, block_size)
        if count != block_count(capacity, block_size):
            raise DigestError('digest map block count %d does not match its geometry' % count)
        expected = _HEADER.size + count * (1 + DIGEST_SIZE) + _TRAILER.size
        if len(blob) != expected:
            raise DigestError('digest map has %d bytes, expected %d' % (len(blob), expected))
        body = blob[:len(blob) - _TRAILER.size]
        if _TRAILER.unpack_from(blob, len(body))[0] != xxhash.xxh3_64_intdigest(body):
            raise DigestError('digest map checksum mismatch (corrupted)')
        m = cls(capacity, block_size)
        pos = _HEADER.size
        m._known[:] = blob[pos:pos + count]
        if any(k > 1 for k in m._known):
            raise DigestError('digest map has invalid known flags')
        pos += count
        m._digests[:] = blob[pos:pos + count * DIGEST_SIZE]
        return m


def index_of_map(dmap, source_id, index=None):
    """Add the known, non-zero blocks of dmap to a dedupe index {digest: (source_id, offset, length)}."""
    if index is None:
        index = {}
    bs = dmap.block_size
    for i, d in dmap.items():
        length = dmap.block_length(i)
        if d == zero_digest(length):
            continue
        index.setdefault(d, (source_id, i * bs, length))
    return index
