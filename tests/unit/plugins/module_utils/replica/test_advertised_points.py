# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One list of restore points for replica_info and replica_failover (state.advertised_points), and what a failover
says about a point it does not accept (failover.accepted_points): partial, never sealed, lost on a disk, unknown."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover import accepted_points
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.failover_plan import (
    FailoverPlanError, choose_point,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import advertised_points, seal_cycle


def _vm(*ids, **extra):
    state = {'points': [{'id': i, 'created': '2026-11-25T0%d:00:00Z' % n, 'consistency': 'crash'}
                        for n, i in enumerate(ids)]}
    state.update(extra)
    return state


def _disk(*ids):
    return [{'id': i, 'created': '2026-11-25T0%d:00:01Z' % n} for n, i in enumerate(ids)]


# retention 3, the run of R2 killed after disk 2000 committed it, R3 and R4 complete
STATE = _vm('R1', 'R3', 'R4')
DISKS = {2000: _disk('R1', 'R2', 'R3', 'R4'), 2001: _disk('R1', 'R3', 'R4')}


def _ids(points):
    return [p['id'] for p in points]


def test_advertised_points_are_the_sealed_points_on_every_disk():
    assert _ids(advertised_points(STATE)) == ['R1', 'R3', 'R4']
    assert _ids(advertised_points(STATE, DISKS)) == ['R1', 'R3', 'R4']
    assert advertised_points(STATE)[0] == STATE['points'][0] and advertised_points(STATE)[0] is not STATE['points'][0]
    # the drift of the bug: the disks pruned R1 for the partial R2; only what every disk has is accepted
    drifted = {2000: _disk('R2', 'R3', 'R4'), 2001: _disk('R1', 'R3', 'R4')}
    assert _ids(advertised_points(STATE, drifted)) == ['R3', 'R4']
    assert advertised_points({}) == [] and advertised_points(STATE, {}) == []


def test_a_committed_failover_keeps_the_points_up_to_its_own():
    committed = dict(STATE, state='committed', failover={'point': 'R3'})
    assert _ids(advertised_points(committed)) == ['R1', 'R3']
    assert _ids(advertised_points(dict(STATE, state='failed_over', failover={'point': 'R3'}))) == ['R1', 'R3', 'R4']


def test_seal_cycle_and_advertised_points_agree_on_a_failed_cycle():
    state = seal_cycle(STATE, {'id': 'R5', 'status': 'failed', 'finished': 1e9}, 3)
    assert 'points' not in state                      # a failed cycle adds no point
    state = dict(STATE, **seal_cycle(STATE, {'id': 'R5', 'status': 'success', 'finished': 1e9}, 3))
    assert _ids(advertised_points(state)) == ['R3', 'R4', 'R5']


def test_failover_accepts_exactly_the_advertised_points():
    accepted, narrowed = accepted_points(STATE, DISKS, 'latest')
    assert _ids(accepted) == _ids(advertised_points(STATE))
    assert dict((k, _ids(v)) for k, v in narrowed.items()) == {2000: ['R1', 'R3', 'R4'], 2001: ['R1', 'R3', 'R4']}
    for point in _ids(accepted):
        assert choose_point(narrowed, point)['id'] == point
    assert choose_point(narrowed)['id'] == 'R4'


def test_a_partial_point_is_refused_with_the_accepted_list():
    with pytest.raises(FailoverPlanError) as err:
        accepted_points(STATE, DISKS, 'R2')
    msg = str(err.value)
    assert 'Restore point R2 is partial' in msg and 'on disk(s) 2000 but not on 2001' in msg
    assert msg.endswith('lists: R1, R3, R4')


def test_a_point_on_every_disk_but_never_sealed_is_refused():
    disks = {2000: _disk('R1', 'R3', 'R4', 'R5'), 2001: _disk('R1', 'R3', 'R4', 'R5')}
    with pytest.raises(FailoverPlanError, match='R5 was committed on every disk but never sealed.*lists: R1, R3, R4$'):
        accepted_points(STATE, disks, 'R5')
    # and `latest` is the newest sealed point, not the unsealed newest of the disks
    accepted, narrowed = accepted_points(STATE, disks, 'latest')
    assert choose_point(narrowed)['id'] == 'R4'


def test_a_sealed_point_a_disk_lost_is_refused():
    disks = {2000: _disk('R2', 'R3', 'R4'), 2001: _disk('R1', 'R3', 'R4')}
    with pytest.raises(FailoverPlanError, match='R1 is sealed on the replica but missing on disk.s. 2000 .*R3, R4$'):
        accepted_points(STATE, disks, 'R1')
    committed = dict(STATE, state='committed', failover={'point': 'R3'})
    with pytest.raises(FailoverPlanError, match='R4 is newer than the committed failover point R3'):
        accepted_points(committed, DISKS, 'R4')


def test_an_unknown_point_is_left_to_choose_point():
    accepted, narrowed = accepted_points(STATE, DISKS, 'R9')
    with pytest.raises(FailoverPlanError, match='Unknown restore point R9; the replica has R1, R3, R4'):
        choose_point(narrowed, 'R9')


def test_no_complete_point():
    with pytest.raises(FailoverPlanError) as err:
        accepted_points({}, {2000: _disk('R1'), 2001: []}, 'latest')
    msg = str(err.value)
    assert 'no complete restore point' in msg and 'sealed: none' in msg and 'disk 2000: R1; disk 2001: none' in msg
