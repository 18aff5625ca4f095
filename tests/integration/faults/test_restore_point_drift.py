# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore points do not drift apart when a run is killed between the commits of its disks (the issue "Crashes,
cancels and concurrent runs under the defaults users get"): with retention 3 and 2, a good cycle, a cycle killed
after its first disk committed and before the seal, then reruns. Then what replica_info lists is exactly the set of
points replica_failover accepts (every id on any disk store and on the VM probed in check mode), the previous good
point is still among them, the killed run's partial point is refused by name, and a test failover + undo to every
listed point shows byte-exact disks (the cycle snapshots' sha256) and back to the newest. Every module runs for real
(the cycles through cycle_driver.py in a child that SIGKILLs itself, info and failover in this process)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

import pytest

from faults_lab import seeded, snapshot_digests, steps
from faults_points import accepted_points, failover, replica_info, rerun

pytestmark = pytest.mark.timeout(900)

# module runs of a cycle: 1 replica_register acquire, 2 cbt_enable, 3 snapshot_consolidate, 4 vm_snapshot,
# 5 disk_replicate of the first disk, 6 of the second, 7 vm_snapshot absent, 8 replica_register release (seal)
BEFORE_SECOND_DISK = 6


def _replica_sums(faults, name):
    return dict((str(d['key']), d['sha256']) for d in
                faults.lab.labctl('checksum', name + '_replica', '--site', 'target')['disks'])


def _by_replica_key(faults, name, digests):
    """{source key: sha256} -> {replica key: sha256}, in disk order."""
    source = [str(d['key']) for d in faults.vm_info(name)['disks']]
    replica = [str(d['key']) for d in faults.vm_info(name + '_replica', 'target')['disks']]
    return dict((r, digests[s]) for s, r in zip(source, replica))


@pytest.mark.parametrize('retention', [3, 2])
def test_killed_between_disks_then_rerun_points_stay_one_list(faults, retention):
    name = 'flt-drift%d' % retention
    rng = seeded('drift-%d' % retention)
    faults.new_vm(name)
    digests = {}

    def cycle(run_id):
        """A clean cycle (retried under another run id while a killed run's lock lease runs); returns its id."""
        log, _refusals, _removed = rerun(faults, name, run_id, retention=retention)
        assert all(r['ok'] for r in steps(log)), [r['result'].get('msg') for r in steps(log) if not r['ok']]
        snapshot, frozen = snapshot_digests(log)
        digests[snapshot[len('replicator-'):]] = frozen
        return snapshot[len('replicator-'):]

    good = cycle('%s-r1' % name)
    faults.guest_write(name, rng)
    killed = '%s-r2' % name
    rc, log = faults.run(faults.job(name, killed, fault={'at': {'step': BEFORE_SECOND_DISK}, 'action': 'self'},
                                    retention=retention))
    assert rc == -9, 'the killed cycle exited %s' % rc
    assert [r['step'] for r in steps(log) if r['ok']][-1].startswith('disk_replicate'), steps(log)
    digests[killed] = snapshot_digests(log)[1]
    disks = faults.replica_disks(name)
    on_disk = [[p['id'] for p in faults.store(path).load()['restore_points']] for _k, path, _d, _c in disks]
    assert killed in on_disk[0] and killed not in on_disk[1], on_disk
    assert [p['id'] for p in faults.replica_state(name)['points']] == [good]     # never sealed
    # the reruns: retention - 1 of them, so that the old rule (retention counted every committed point) pruned the
    # good point from the first disk while the VM still listed it
    for index in range(retention - 1):
        faults.guest_write(name, rng)
        cycle('%s-r%d' % (name, index + 3))

    listed = [p['id'] for p in replica_info(faults, name)['points']]
    sealed = [p['id'] for p in faults.replica_state(name)['points']]
    assert listed == sealed and good in listed and killed not in listed, listed
    assert len(listed) == retention
    on_disk = [[p['id'] for p in faults.store(path).load()['restore_points']] for _k, path, _d, _c in disks]
    assert all(set(listed) <= set(ids) for ids in on_disk), on_disk
    assert killed in on_disk[0]         # kept as a step of the first disk's undo chain to the good point
    candidates = sorted(set(listed) | set(i for ids in on_disk for i in ids))
    accepted, refused = accepted_points(faults, name, candidates)
    assert sorted(accepted) == sorted(listed), (accepted, refused)
    assert 'is partial' in refused[killed] and ', '.join(listed) in refused[killed], refused[killed]

    _test_every_point(faults, name, listed, digests, listed[-1])
    print('\nretention %d: listed %s, accepted %s, disks hold %s' % (retention, listed, accepted, on_disk))

    # killed after every disk committed, before the seal (before the snapshot removal): the VM keeps listing its
    # points, and every disk still holds them all (the oldest listed one too, until a seal drops it from the VM)
    faults.guest_write(name, rng)
    unsealed = '%s-r%d' % (name, retention + 2)
    rc, log = faults.run(faults.job(name, unsealed, fault={'at': {'step': BEFORE_SECOND_DISK + 1}, 'action': 'self'},
                                    retention=retention))
    assert rc == -9 and len([r for r in steps(log) if r['ok'] and r['step'].startswith('disk_replicate')]) == 2
    digests[unsealed] = snapshot_digests(log)[1]
    _wait_for_the_lease(faults, name)        # the killed run's lock (1 s lease) would refuse the failover
    assert [p['id'] for p in replica_info(faults, name)['points']] == listed
    on_disk = [[p['id'] for p in faults.store(path).load()['restore_points']] for _k, path, _d, _c in disks]
    assert all(set(listed) | {unsealed} <= set(ids) for ids in on_disk), on_disk
    accepted, refused = accepted_points(faults, name, [unsealed] + listed)
    assert accepted == listed and 'never sealed' in refused[unsealed], refused
    # the disks hold the unsealed point as their newest: a failover to an older point rolls back from it
    _test_every_point(faults, name, listed, digests, unsealed)
    # the next run supersedes it: the listed points move on by one
    faults.guest_write(name, rng)
    last = cycle('%s-r%d' % (name, retention + 3))
    now = [p['id'] for p in replica_info(faults, name)['points']]
    assert now == (listed + [last])[-retention:] and unsealed not in now, now
    accepted, refused = accepted_points(faults, name, sorted(set(now) | set(listed) | {unsealed}))
    assert sorted(accepted) == sorted(now), (accepted, refused)
    _test_every_point(faults, name, now, digests, last)
    # and the stores themselves: every kept point of every disk (partial ones included) rolls back exactly
    assert faults.check_points(name, digests) > 0


def _wait_for_the_lease(faults, name):
    lock = faults.replica_state(name).get('lock') or {}
    time.sleep(max(0.0, min(5.0, lock.get('expires', 0) - time.time() + 0.2)))


def _test_every_point(faults, name, listed, digests, newest):
    """A test failover to every listed point shows exactly the bytes its cycle snapshot froze; undo returns to the
    newest point of the disks."""
    newest = _by_replica_key(faults, name, digests[newest])
    for point in listed:
        tested = failover(faults, name, 'test', restore_point=point)
        assert not tested.get('failed') and tested['restore_point']['id'] == point, tested.get('msg')
        assert [p['id'] for p in tested['replica']['points']] == listed
        assert _replica_sums(faults, name) == _by_replica_key(faults, name, digests[point]), point
        undone = failover(faults, name, 'undone')
        assert not undone.get('failed'), undone.get('msg')
        assert faults.replica_state(name)['state'] == 'ready'
        assert _replica_sums(faults, name) == newest, 'after the undo of %s' % point
