# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover_plan import (
    FailoverPlanError, TransitionRefused, check_transition, choose_point, common_points, position,
)


def _points(*items):
    return [{'id': pid, 'created': created} for pid, created in items]


DISKS = {
    2000: _points(('c1', '2026-11-25T06:00:00Z'), ('c2', '2026-11-25T07:00:00Z'), ('c3', '2026-11-25T08:00:00Z')),
    2001: _points(('c1', '2026-11-25T06:00:05Z'), ('c2', '2026-11-25T07:00:09Z'), ('c3', '2026-11-25T08:00:02Z')),
}


def test_common_points_take_the_newest_time_of_the_disks():
    points = common_points(DISKS)
    assert [p['id'] for p in points] == ['c1', 'c2', 'c3']
    assert points[1]['created'] == '2026-11-25T07:00:09Z'
    partial = {2000: DISKS[2000], 2001: DISKS[2001][:2]}
    assert [p['id'] for p in common_points(partial)] == ['c1', 'c2']
    assert common_points({}) == []


def test_choose_latest_by_id_and_by_time():
    assert choose_point(DISKS)['id'] == 'c3'
    assert choose_point(DISKS, 'c1')['id'] == 'c1'
    assert choose_point(DISKS, before='2026-11-25T07:30:00Z')['id'] == 'c2'
    assert choose_point(DISKS, before='2026-11-25T07:00:09Z')['id'] == 'c2'
    assert choose_point(DISKS, before='2026-11-25T07:00:08Z')['id'] == 'c1'  # c2 was whole only at :09
    assert choose_point(DISKS, 'c1', before='2026-11-25T09:00:00Z')['id'] == 'c1'


def test_choose_errors_are_clear():
    with pytest.raises(FailoverPlanError, match='Unknown restore point c9; the replica has c1, c2, c3'):
        choose_point(DISKS, 'c9')
    partial = {2000: DISKS[2000], 2001: DISKS[2001][:2]}
    with pytest.raises(FailoverPlanError, match=r'c3 is missing on disk\(s\) 2001'):
        choose_point(partial, 'c3')
    assert choose_point(partial)['id'] == 'c2'  # latest = newest point whole on every disk
    with pytest.raises(FailoverPlanError, match='No restore point at or before'):
        choose_point(DISKS, before='2026-01-01T00:00:00Z')
    with pytest.raises(FailoverPlanError, match='Not a timestamp'):
        choose_point(DISKS, before='yesterday')
    with pytest.raises(FailoverPlanError, match='no restore point present on all'):
        choose_point({2000: [], 2001: DISKS[2001]})


def test_position():
    assert position({'restore_points': DISKS[2000], 'rolled_back': None}) == 'c3'
    assert position({'restore_points': DISKS[2000], 'rolled_back': 'c1'}) == 'c1'
    assert position({'restore_points': [], 'rolled_back': None}) is None


@pytest.mark.parametrize('current,wanted,cur_point,new_point,expected', [
    ('ready', 'failed_over', None, 'c3', 'act'),
    (None, 'test', None, 'c3', 'act'),
    ('failed_over', 'failed_over', 'c2', 'c2', 'noop'),
    ('test_failover', 'test', 'c3', 'c3', 'noop'),
    ('ready', 'undone', None, None, 'noop'),
    ('test_failover', 'undone', None, None, 'act'),
    ('failed_over', 'undone', None, None, 'act'),
    ('failed_over', 'committed', None, None, 'act'),
    ('committed', 'committed', None, None, 'noop'),
])
def test_allowed_transitions(current, wanted, cur_point, new_point, expected):
    assert check_transition(current, wanted, cur_point, new_point) == expected


@pytest.mark.parametrize('current,wanted,cur_point,new_point,message', [
    ('test_failover', 'failed_over', 'c3', 'c3', 'undo it first'),
    ('failed_over', 'test', 'c3', 'c3', 'undo it first'),
    ('failed_over', 'failed_over', 'c2', 'c3', 'already in failed_over at restore point c2'),
    ('committed', 'undone', None, None, 'cannot be undone'),
    ('committed', 'failed_over', None, 'c3', 'cannot be failed over again'),
    ('ready', 'committed', None, None, 'Only a failover can be committed'),
    ('test_failover', 'committed', None, None, 'never committed'),
])
def test_refused_transitions(current, wanted, cur_point, new_point, message):
    with pytest.raises(TransitionRefused, match=message):
        check_transition(current, wanted, cur_point, new_point)
