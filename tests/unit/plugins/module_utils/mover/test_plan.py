# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import DigestMap, block_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.plan import PlanError, build_plan

MIB = 1024 * 1024


def test_full_plan_marks_source_holes():
    cap = 4 * MIB + 512
    p = build_plan('full', cap, MIB, source_extents=[(0, MIB, False), (MIB, 3 * MIB + 512, True)])
    assert p.blocks == [0, 1, 2, 3, 4] and p.source_zero == frozenset([1, 2, 3, 4])
    assert p.bytes_planned == cap


def test_cbt_plan_sends_only_changed_ranges():
    p = build_plan('cbt', 8 * MIB, MIB, cbt_extents=[(512, 512), (7 * MIB + 4096, 512), (3 * MIB, MIB)])
    assert p.blocks == [0, 3, 7]
    # 512-byte areas widen to one 4 KiB page each; a whole changed block stays a whole-block op
    assert p.parts == {0: [(0, 4096)], 7: [(7 * MIB + 4096, 4096)]}
    assert p.bytes_planned == MIB + 2 * 4096
    assert p.describe()['blocks_partial'] == 2
    with pytest.raises(PlanError):
        build_plan('cbt', 8 * MIB, MIB)


def test_cbt_plan_source_holes_stay_whole_zero_blocks():
    p = build_plan('cbt', 4 * MIB, MIB, cbt_extents=[(MIB + 8192, 4096), (2 * MIB, 4096)],
                   source_extents=[(0, MIB, False), (MIB, MIB, True), (2 * MIB, 2 * MIB, False)])
    assert p.blocks == [1, 2] and p.source_zero == frozenset([1])
    assert p.parts == {2: [(2 * MIB, 4096)]}
    assert p.bytes_planned == MIB + 4096


def test_digest_plan_needs_matching_map():
    m = DigestMap(2 * MIB, MIB)
    m.set(0, block_digest(b'x'))
    p = build_plan('digests', 2 * MIB, MIB, target_map=m)
    assert p.compare and p.blocks == [0, 1]
    with pytest.raises(PlanError):
        build_plan('digests', 4 * MIB, MIB, target_map=m)
    with pytest.raises(PlanError):
        build_plan('bogus', MIB, MIB)
