# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.digests import DigestMap, block_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.plan import PlanError, build_plan

MIB = 1024 * 1024


def test_full_plan_marks_source_holes():
    cap = 4 * MIB + 512
    p = build_plan('full', cap, MIB, source_extents=[(0, MIB, False), (MIB, 3 * MIB + 512, True)])
    assert p.blocks == [0, 1, 2, 3, 4] and p.source_zero == frozenset([1, 2, 3, 4])
    assert p.bytes_planned == cap


def test_cbt_plan():
    p = build_plan('cbt', 8 * MIB, MIB, cbt_extents=[(512, 512), (7 * MIB + 4096, 512)])
    assert p.blocks == [0, 7] and p.bytes_planned == 2 * MIB
    with pytest.raises(PlanError):
        build_plan('cbt', 8 * MIB, MIB)


def test_digest_plan_needs_matching_map():
    m = DigestMap(2 * MIB, MIB)
    m.set(0, block_digest(b'x'))
    p = build_plan('digests', 2 * MIB, MIB, target_map=m)
    assert p.compare and p.blocks == [0, 1]
    with pytest.raises(PlanError):
        build_plan('digests', 4 * MIB, MIB, target_map=m)
    with pytest.raises(PlanError):
        build_plan('bogus', MIB, MIB)
