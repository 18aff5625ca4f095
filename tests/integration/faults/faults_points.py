# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kill-point loop shared by the fault scenarios: for each seeded point, guest writes, a cycle with the fault,
the checks of what the failed cycle left, a rerun, and the checks of the replica (bytes, every restore point, no
source snapshot, lock free)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from faults_cycle import run_module
from faults_lab import sha256_file, snapshot_digests, steps

LOCK_RETRIES = 8


def _disk_steps_ok(log):
    return set(int(r['step'].split()[1]) for r in steps(log) if r['step'].startswith('disk_replicate') and r['ok'])


def _commit_unknown(log):
    """Disk keys whose copy failed after the whole cycle was sent: the module says the receiver may have committed
    (an ssh client killed while a ControlMaster connection carries its stream on to the receiver, for example)."""
    return set(int(r['step'].split()[1]) for r in steps(log) if r['step'].startswith('disk_replicate') and not r['ok']
               and 'may have committed' in (r['result'].get('hint') or ''))


def _fault(log):
    return next((r for r in log if r.get('event') == 'fault'), None)


def _extra_change_ids(state):
    return dict((entry.get('source_key'), entry.get('change_id')) for entry in (state.get('disks') or {}).values())


def rerun(faults, vm, run_id, **job_args):
    """Run a clean cycle until it is not refused by a (crashed run's) lock; returns (log, refusals, orphaned
    snapshots removed by all tries)."""
    refusals, removed = [], []
    for attempt in range(LOCK_RETRIES):
        rc, log = faults.run(faults.job(vm, '%s-%d' % (run_id, attempt) if attempt else run_id, **job_args),
                             sshd_pid=job_args.get('sshd_pid'))
        assert rc == 0, 'driver of %s exited %s' % (run_id, rc)
        for record in steps(log):
            if record['step'] == 'snapshot_consolidate':
                removed.extend(s['name'] for s in record['result'].get('removed') or [])
        failed = [r for r in steps(log) if not r['ok']]
        locked = [r for r in failed if r['result'].get('fault') == 'LockHeld']
        if locked and failed[0] is locked[0]:
            refusals.append(locked[0]['result']['msg'])
            # wait for the crashed run's lease (lock_ttl 1 s) to run out, and no longer
            lock = faults.replica_state(vm).get('lock') or {}
            time.sleep(min(1.5, max(0.05, lock.get('expires', 0) - time.time() + 0.05)))
            continue
        return log, refusals, removed
    raise AssertionError('%s: still refused by a lock after %d tries: %s' % (run_id, LOCK_RETRIES, refusals[-1:]))


def run_points(faults, reliability, scenario, vm, points, rng, relays=None, sshd_pid=None, receiver=None):
    """points: [fault dicts]. Returns the table row."""
    started = time.monotonic()
    digests = {}
    job_args = dict(relays=relays, receiver=receiver, sshd_pid=sshd_pid)
    verified = fired = orphans_removed = lock_refusals = 0
    # a clean first cycle: the replica exists and has a restore point before the faults start
    log, _refused, _removed = rerun(faults, vm, '%s-base' % scenario, **job_args)
    name, snap = snapshot_digests(log)
    digests[name[len('replicator-'):]] = snap
    for index, fault in enumerate(points):
        where = '%s point %d %s' % (scenario, index, fault)
        faults.guest_write(vm, rng)
        before = faults.committed_change_ids(vm)
        extra_before = _extra_change_ids(faults.replica_state(vm))
        run_id = '%s-%02d-k' % (scenario, index)
        job = faults.job(vm, run_id, fault=fault, receiver=receiver, relays=relays)
        rc, log = faults.run(job, sshd_pid=sshd_pid)
        for relay in (relays or {}).values():
            relay.start()     # the site comes back
        hit = _fault(log)
        assert hit is not None, '%s: the fault never fired (log %s)' % (where, log[-3:])
        fired += 1
        assert (rc == -9) == (fault['action'] == 'self'), '%s: driver exit %s' % (where, rc)
        name, snap = snapshot_digests(log)
        if name:
            digests[run_id] = snap
        # what the failed cycle left: changeIds only move for disks whose copy completed (or was committing)
        done = _disk_steps_ok(log)
        unknown = _commit_unknown(log)
        after = faults.committed_change_ids(vm)
        extra_after = _extra_change_ids(faults.replica_state(vm))
        for position, key in enumerate(sorted(before)):
            if key in done:
                continue
            assert extra_after.get(key) == extra_before.get(key), '%s: extraConfig changeId of disk %s moved' % (
                where, key)
            # the disk being copied may commit: at a kill during its commit, when only the vSphere endpoint went away
            # (the data path does not use it; recording the changeId on the replica then fails), or when the stream
            # still reached the receiver whole and the module says so
            active = hit.get('disk_index') == position
            committing = active and (hit.get('stage') in ('committing', 'done') or fault['action'].startswith('relay:')
                                     or key in unknown)
            if not committing:
                assert after[key] == before[key], '%s: committed changeId of disk %s moved %s -> %s' % (
                    where, key, before[key], after[key])
        left = [s for s in faults.snapshots(vm) if s.startswith('replicator-')]
        # the rerun completes, removes what the failed run left, and the replica is the source snapshot
        log, refused, removed = rerun(faults, vm, '%s-%02d-r' % (scenario, index), **job_args)
        for message in refused:
            assert 'locked by run %s' % run_id in message, '%s: refusal does not name the holder: %s' % (where, message)
        lock_refusals += len(refused)
        assert all(r['ok'] for r in steps(log)), '%s: rerun failed: %s' % (
            where, [r['result'].get('msg') for r in steps(log) if not r['ok']])
        assert sorted(removed) == sorted(left), '%s: orphans %s, removed %s' % (where, left, removed)
        orphans_removed += len(removed)
        assert faults.snapshots(vm) == [], '%s: snapshots left after the rerun' % where
        name, snap = snapshot_digests(log)
        digests[name[len('replicator-'):]] = snap
        for key, _path, data, capacity in faults.replica_disks(vm):
            assert sha256_file(data, capacity) == snap[str(key)], '%s: replica disk %s differs from the snapshot' % (
                where, key)
            verified += capacity
        state = faults.replica_state(vm)
        assert not state.get('lock'), '%s: lock left after the rerun: %s' % (where, state.get('lock'))
        verified += faults.check_points(vm, digests)
    row = {'scenario': scenario, 'points': len(points), 'fired': fired, 'reruns_ok': len(points),
           'orphans_removed': orphans_removed, 'lock_refusals': lock_refusals, 'bytes_verified': verified,
           'seconds': round(time.monotonic() - started, 1)}
    reliability.add(**row)
    return row


def replica_info(faults, name):
    """The replica of source VM `name` as replicator.vsphere.replica_info reports it."""
    result = run_module('replica_info', dict(faults.connection('target'), replica_name=name + '_replica'))
    assert not result.get('failed') and len(result['replicas']) == 1, result
    return result['replicas'][0]


def failover(faults, name, state, **extra):
    """replicator.vsphere.replica_failover of the replica of `name` (a test failover on the DR network)."""
    args = dict(faults.connection('target'), replica_name=name + '_replica', state=state,
                target_datastore_paths=faults.site('target')['datastores'])
    if state == 'test':
        args['test_network'] = 'DR Network'
    args.update(extra)
    return run_module('replica_failover', args)


def accepted_points(faults, name, candidates):
    """The candidates a test failover accepts, probed in check mode; {refused id: message} beside."""
    accepted, refused = [], {}
    for point in candidates:
        result = failover(faults, name, 'test', restore_point=point, _ansible_check_mode=True)
        if result.get('failed'):
            refused[point] = result['msg']
        else:
            assert result['restore_point']['id'] == point, result
            accepted.append(point)
    return accepted, refused
