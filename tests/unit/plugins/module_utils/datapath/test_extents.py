# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import extents as ext

MIB = 1024 * 1024


def test_coalesce_merges_overlapping_and_touching():
    assert ext.coalesce([(10, 5), (0, 10), (30, 0), (14, 6), (40, 2)]) == [(0, 20), (40, 2)]


def test_block_range_short_last_block():
    cap = 3 * MIB + 512
    assert ext.block_count(cap, MIB) == 4
    assert ext.block_range(3, MIB, cap) == (3 * MIB, 512)
    with pytest.raises(ext.ExtentError):
        ext.block_range(4, MIB, cap)


def test_extents_to_blocks_any_alignment():
    cap = 10 * MIB
    # 512-byte extents, straddling block boundaries, duplicates
    got = ext.extents_to_blocks([(512, 512), (MIB - 512, 1024), (5 * MIB, 1), (512, 512)], MIB, cap)
    assert got == [0, 1, 5]


def test_extents_at_the_very_end_and_short_block():
    cap = 4 * MIB + 1024
    assert ext.extents_to_blocks([(cap - 512, 512)], MIB, cap) == [4]
    assert ext.blocks_to_extents([3, 4], MIB, cap) == [(3 * MIB, MIB + 1024)]


def test_extent_beyond_capacity_is_refused():
    with pytest.raises(ext.ExtentError):
        ext.extents_to_blocks([(MIB, 2 * MIB)], MIB, 2 * MIB)
    with pytest.raises(ext.ExtentError):
        ext.check_extents([(-1, 5)], MIB)


def test_cbt_to_blocks_accepts_dicts_and_objects():
    class Area(object):
        def __init__(self, start, length):
            self.start = start
            self.length = length
    got = ext.cbt_to_blocks([{'start': 0, 'length': 4096}, Area(3 * MIB, 2 * MIB)], MIB, 8 * MIB)
    assert got == [0, 3, 4]


def test_fully_covered_blocks():
    cap = 4 * MIB + 512
    holes = [(MIB - 1, 2 * MIB + 1), (4 * MIB, 512)]
    assert ext.fully_covered_blocks(holes, MIB, cap) == [1, 2, 4]


def test_split_and_runs():
    assert list(ext.split(0, 10, 4)) == [(0, 4), (4, 4), (8, 2)]
    assert ext.runs([0, 1, 2, 5, 7, 8]) == [(0, 3), (5, 1), (7, 2)]
    assert ext.align_to_blocks(MIB - 1, 2, MIB) == (0, 2)


def test_cbt_pieces_align_clip_and_merge():
    cap = 4 * MIB + 1536        # short last block, not a multiple of 4 KiB
    got = ext.cbt_pieces([(100, 10), (5000, 10), (MIB - 512, 1024), (2 * MIB, MIB), (cap - 512, 512)], MIB, cap)
    assert got == [
        (0, [(0, 8192), (MIB - 4096, 4096)]),      # 100 and 5000 widen to two touching pages, merged
        (1, [(MIB, 4096)]),                         # the area straddling the boundary is clipped per block
        (2, None),                                  # whole block
        (4, None),                                  # the short last block is covered entirely (clipped to capacity)
    ]
    assert ext.cbt_pieces([(4 * MIB, 512)], MIB, cap) == [(4, None)]
    assert ext.cbt_pieces([(3 * MIB + 4096, 4096), (3 * MIB + 12288, 4096)], MIB, cap) == \
        [(3, [(3 * MIB + 4096, 4096), (3 * MIB + 12288, 4096)])]
    with pytest.raises(ext.ExtentError):
        ext.cbt_pieces([(cap - 512, 1024)], MIB, cap)


def test_cbt_pieces_small_blocks_align_to_block():
    assert ext.cbt_pieces([{'start': 512, 'length': 512}], 4096, 16384) == [(0, None)]
