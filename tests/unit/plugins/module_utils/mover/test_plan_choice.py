# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.plan_choice import (
    PlanChoiceError, change_id_epoch, choose_plan,
)

EPOCH = '52 de 3f 0a 11 22 33 44-55 66 77 88 99 aa bb cc'
CAP = 64 << 20


def _committed(change_id=EPOCH + '/4', capacity=CAP, has_map=True, points=1):
    return {'change_id': change_id, 'capacity': capacity, 'has_digest_map': has_map,
            'restore_points': [{'id': 'p%d' % i} for i in range(points)]}


def test_epoch():
    assert change_id_epoch(EPOCH + '/17') == EPOCH
    assert change_id_epoch(None) is None
    assert change_id_epoch('garbage') is None


def test_first_cycle_is_full():
    kind, reason, prev = choose_plan(None, EPOCH + '/1', CAP)
    assert (kind, prev) == ('full', None) and 'first cycle' in reason
    assert choose_plan(_committed(points=0), EPOCH + '/1', CAP)[0] == 'full'


def test_same_epoch_is_cbt_from_the_committed_change_id():
    expected = ('cbt', 'changed blocks since changeId %s/4' % EPOCH, EPOCH + '/4')
    assert choose_plan(_committed(), EPOCH + '/5', CAP) == expected


@pytest.mark.parametrize('source, expect', [
    (None, 'CBT is not active'),
    ('52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 01/1', 'CBT was reset'),
])
def test_cbt_unusable_falls_back_to_digests(source, expect):
    kind, reason, prev = choose_plan(_committed(), source, CAP)
    assert kind == 'digests' and prev is None
    assert expect in reason and 'digests' in reason


def test_point_without_change_id_uses_digests():
    kind, reason, _prev = choose_plan(_committed(change_id=None), EPOCH + '/5', CAP)
    assert kind == 'digests' and 'without CBT' in reason


def test_size_change_and_missing_map_compare_the_whole_disk():
    kind, reason, _prev = choose_plan(_committed(capacity=CAP // 2), EPOCH + '/5', CAP)
    assert kind == 'seeded' and 'size changed' in reason
    kind, reason, _prev = choose_plan(_committed(has_map=False), EPOCH + '/5', CAP)
    assert kind == 'seeded' and 'no digest map' in reason


def test_requested_plans():
    assert choose_plan(_committed(), EPOCH + '/5', CAP, 'full')[0] == 'full'
    assert choose_plan(None, None, CAP, 'seeded')[0] == 'seeded'
    assert choose_plan(_committed(), EPOCH + '/5', CAP, 'digests')[0] == 'digests'
    with pytest.raises(PlanChoiceError, match='plan cbt is not possible: CBT was reset'):
        choose_plan(_committed(), '52 ff/1', CAP, 'cbt')
    with pytest.raises(PlanChoiceError, match='no restore point'):
        choose_plan(None, EPOCH + '/1', CAP, 'cbt')
    with pytest.raises(PlanChoiceError, match='plan must be one of'):
        choose_plan(None, None, CAP, 'fast')
