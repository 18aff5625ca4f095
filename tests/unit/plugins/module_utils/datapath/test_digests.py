# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import DigestError, DigestMap, block_digest, index_of_map, zero_digest

MIB = 1024 * 1024


def test_block_digest_is_xxh3_128():
    d = block_digest(b'abc')
    assert len(d) == 16 and d != block_digest(b'abd')
    assert zero_digest(4096) == block_digest(bytes(4096))


def test_map_roundtrip_and_unknown():
    m = DigestMap(3 * MIB + 512, MIB)
    assert m.count == 4 and m.block_length(3) == 512
    assert m.get(0) is None
    m.set(3, block_digest(b'x'))
    m.set(0, zero_digest(MIB))
    back = DigestMap.from_bytes(m.to_bytes())
    assert back == m and back.get(3) == block_digest(b'x') and back.get(1) is None
    assert back.known_count() == 2


def test_diff_counts_unknown_as_different():
    a = DigestMap(4 * MIB, MIB)
    b = DigestMap(4 * MIB, MIB)
    for i in range(4):
        a.set(i, block_digest(bytes([i])))
        b.set(i, block_digest(bytes([i])))
    b.set(2, block_digest(b'changed'))
    b.forget(3)
    assert a.diff(b) == [2, 3]
    with pytest.raises(DigestError):
        a.diff(DigestMap(4 * MIB, 2 * MIB))


def test_corrupted_blob_is_refused():
    m = DigestMap(2 * MIB, MIB)
    blob = bytearray(m.to_bytes())
    blob[40] ^= 1
    with pytest.raises(DigestError):
        DigestMap.from_bytes(bytes(blob))
    with pytest.raises(DigestError):
        DigestMap.from_bytes(blob[:10])


def test_bad_geometry():
    with pytest.raises(DigestError):
        DigestMap(MIB, 3000)


def test_index_skips_zero_blocks_and_keeps_first():
    m = DigestMap(3 * MIB, MIB)
    m.set(0, zero_digest(MIB))
    m.set(1, block_digest(b'a'))
    m.set(2, block_digest(b'a'))
    idx = index_of_map(m, 7)
    assert idx == {block_digest(b'a'): (7, MIB, MIB)}


def test_changed_ranges_pages_coalesced_and_short_tail():
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import changed_ranges
    old = bytearray(MIB + 1000)
    new = bytearray(old)
    assert changed_ranges(old, new) == []
    new[5] = 1                          # page 0
    new[4096 * 17 + 3] = 2              # pages 17 and 18 (two bytes) -> one run across a 64 KiB chunk boundary
    new[4096 * 18] = 3
    new[65536 * 3 - 1] = 4              # last page of chunk 2 and first of chunk 3: one run
    new[65536 * 3] = 5
    new[MIB + 999] = 6                  # the short tail page
    assert changed_ranges(old, new) == [(0, 4096), (4096 * 17, 8192), (65536 * 3 - 4096, 8192), (MIB, 1000)]
    assert changed_ranges(memoryview(old), bytes(new), page=512, chunk=4096)[0] == (0, 512)
    assert changed_ranges(bytes(10), b'\x00' * 9 + b'\x01') == [(0, 10)]


def test_changed_ranges_rejects_mismatched_input():
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import changed_ranges
    with pytest.raises(ValueError):
        changed_ranges(bytes(10), bytes(11))
    with pytest.raises(ValueError):
        changed_ranges(bytes(10), bytes(10), page=4096, chunk=6000)
