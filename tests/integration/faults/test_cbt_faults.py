# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CBT faults between two cycles: a CBT reset, a source disk grown, a committed changeId that belongs to another
disk, a user snapshot taken and reverted. Each cycle runs the role's steps (faults_cycle); the plan disk_replicate
reports says what was detected and which fallback ran; the replica must equal the cycle snapshot byte for byte."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random
import time

import pytest

from faults_lab import MIB, sha256_file, snapshot_digests, steps

pytestmark = pytest.mark.timeout(600)


def _cycle(faults, vm, run_id):
    rc, log = faults.run(faults.job(vm, run_id, lock_ttl=600))
    failed = [r for r in steps(log) if not r['ok']]
    assert rc == 0 and not failed, [r['result'].get('msg') for r in failed]
    plans = dict((r['result']['disk']['key'], r['result']['plan']) for r in steps(log)
                 if r['step'].startswith('disk_replicate'))
    _name, snap = snapshot_digests(log)
    verified = 0
    for key, _path, data, capacity in faults.replica_disks(vm):
        assert sha256_file(data, capacity) == snap[str(key)], '%s: replica disk %s differs' % (run_id, key)
        verified += capacity
    return plans, log, verified


def _row(reliability, scenario, started, verified):
    reliability.add(scenario='cbt: ' + scenario, points=1, fired=1, reruns_ok=1, orphans_removed=0, lock_refusals=0,
                    bytes_verified=verified, seconds=round(time.monotonic() - started, 1))


@pytest.fixture
def replicated(faults):
    """A fresh VM replicated once (full) and once more (CBT), so the next cycle would normally use CBT."""
    def make(name):
        faults.new_vm(name)
        plans, _log, _v = _cycle(faults, name, name + '-c1')
        assert set(p['kind'] for p in plans.values()) == {'full'}
        faults.guest_write(name, random.Random(name))
        plans, _log, _v = _cycle(faults, name, name + '-c2')
        assert set(p['kind'] for p in plans.values()) == {'cbt'}, plans
        return name
    return make


def test_cbt_reset(faults, replicated, reliability):
    started = time.monotonic()
    vm = replicated('flt-cbt-reset')
    faults.lab.control('source', 'reset-cbt', method='POST', vm=vm)
    faults.guest_write(vm, random.Random(7))
    plans, _log, verified = _cycle(faults, vm, vm + '-c3')
    for plan in plans.values():
        assert plan['kind'] == 'digests' and 'CBT was reset' in plan['reason'], plan
    plans, _log, _v = _cycle(faults, vm, vm + '-c4')     # tracking continues from the new epoch
    assert set(p['kind'] for p in plans.values()) == {'cbt'}
    _row(reliability, 'reset', started, verified)


def test_disk_grown_between_cycles(faults, replicated, reliability):
    from pyVmomi import vim
    started = time.monotonic()
    vm = replicated('flt-cbt-grow')
    si = faults.lab.connect('source')
    source = faults.lab.find_vm(si, vm)
    disk = [d for d in faults.lab.disks(source) if d.key == 2001][0]
    disk.capacityInBytes = 5 * MIB
    disk.capacityInKB = 5 * 1024
    faults.lab.wait(source.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(
        operation='edit', device=disk)])))
    info = faults.vm_info(vm)['disks'][1]
    assert info['capacity'] == 5 * MIB
    with open(info['data'], 'r+b') as f:        # the guest uses the new space
        f.seek(4 * MIB + 4096)
        f.write(random.Random(8).randbytes(300000))
    plans, log, verified = _cycle(faults, vm, vm + '-c3')
    register = next(r for r in steps(log) if r['step'] == 'replica_register acquire')
    assert any('grow replica disk' in a for a in register['result']['actions']), register['result']['actions']
    assert plans[2001]['kind'] == 'seeded' and 'disk size changed' in plans[2001]['reason'], plans[2001]
    assert plans[2000]['kind'] == 'cbt', plans[2000]
    assert faults.replica_disks(vm)[1][3] == 5 * MIB
    plans, _log, _v = _cycle(faults, vm, vm + '-c4')
    assert plans[2001]['kind'] in ('cbt', 'digests'), plans[2001]
    _row(reliability, 'disk grown', started, verified)


def test_change_id_of_another_disk(faults, replicated, reliability):
    started = time.monotonic()
    vm = replicated('flt-cbt-other')
    disks = faults.replica_disks(vm)
    ids = faults.committed_change_ids(vm)
    # the committed state of disk 2000 now carries disk 2001's changeId (what a swapped or re-attached disk leaves)
    store = faults.store(disks[0][1])
    store._lock()  # pylint: disable=protected-access
    try:
        doc = store._read()  # pylint: disable=protected-access
        doc['change_id'] = ids[2001]
        store._write(doc)  # pylint: disable=protected-access
    finally:
        store._unlock()  # pylint: disable=protected-access
    faults.guest_write(vm, random.Random(9))
    plans, _log, verified = _cycle(faults, vm, vm + '-c3')
    assert plans[2000]['kind'] == 'digests' and 'epoch changed' in plans[2000]['reason'], plans[2000]
    assert plans[2001]['kind'] == 'cbt'
    _row(reliability, "changeId of another disk", started, verified)


def test_user_snapshot_taken_and_reverted(faults, replicated, reliability):
    started = time.monotonic()
    vm = replicated('flt-cbt-revert')
    si = faults.lab.connect('source')
    source = faults.lab.find_vm(si, vm)
    user = faults.lab.wait(source.CreateSnapshot_Task('user-before-upgrade', 'taken by the guest owner', False, False))
    faults.guest_write(vm, random.Random(10))              # the upgrade writes ...
    faults.lab.wait(user.RevertToSnapshot_Task())          # ... and is undone
    faults.lab.wait(user.RemoveSnapshot_Task(False))
    faults.guest_write(vm, random.Random(11), percent=3)
    plans, _log, verified = _cycle(faults, vm, vm + '-c3')
    print('plans after the revert: %s' % dict((k, (p['kind'], p['reason'])) for k, p in plans.items()))
    faults.check_points(vm, _digests(faults, vm))
    _row(reliability, 'user snapshot taken and reverted', started, verified)


def _digests(faults, vm):
    """{cycle id: {disk key: sha256}} of every cycle of `vm` run by this session's jobs."""
    import glob
    import os
    from faults_lab import read_log
    out = {}
    for path in glob.glob(os.path.join(faults.tmp, 'job*', 'log.jsonl')):
        name, snap = snapshot_digests(read_log(path))
        if name and name.startswith('replicator-%s-' % vm):
            out[name[len('replicator-'):]] = snap
    return out
