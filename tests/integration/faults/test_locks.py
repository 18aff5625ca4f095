# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run lock between real cycles: a second run of the same VM is refused while the first holds the lock (the
refusal names the holder), and the lease of a run killed mid-copy expires so the next run takes over."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import time

import pytest

from faults_lab import DRIVER, driver_env, read_log, sha256_file, snapshot_digests, steps

pytestmark = pytest.mark.timeout(600)


def _start(faults, job):
    path = os.path.join(job['dir'], 'job.json')
    with open(path, 'w') as f:
        json.dump(job, f)
    return subprocess.Popen([sys.executable, DRIVER, path], env=driver_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_for(path, event, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(r.get('event') == event for r in read_log(path)):
            return
        time.sleep(0.1)
    raise AssertionError('no %s event in %s' % (event, path))


def _failed(log):
    return [r for r in steps(log) if not r['ok']]


def _exact(faults, vm, log):
    _name, snap = snapshot_digests(log)
    for key, _path, data, capacity in faults.replica_disks(vm):
        assert sha256_file(data, capacity) == snap[str(key)]


def test_concurrent_run_refused_while_the_first_holds_the_lock(faults, reliability):
    vm = 'flt-lock1'
    faults.new_vm(vm)
    started = time.monotonic()
    first = faults.job(vm, 'holder-run', lock_ttl=600, fault={'at': {'disk': 0, 'fraction': 0.01}, 'action': 'hold:8'})
    proc = _start(faults, first)
    try:
        _wait_for(first['log'], 'fault')            # the first run is copying, its lock held
        rc, log = faults.run(faults.job(vm, 'second-run', lock_ttl=600))
        assert rc == 0
        refused = _failed(log)
        assert refused and refused[0]['step'] == 'replica_register acquire', log
        message = refused[0]['result']['msg']
        assert refused[0]['result']['fault'] == 'LockHeld'
        assert 'locked by run holder-run of ' in message and ' pid %d ' % proc.pid in message, message
        assert re.search(r'since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; its lease runs until \d{4}-', message), message
        assert not any(r['step'].startswith('disk_replicate') for r in steps(log))   # it never touched the disks
        assert [s['name'] for s in faults.vm_info(vm)['snapshots'] or []] == ['replicator-holder-run']
    finally:
        assert proc.wait(120) == 0
    log = read_log(first['log'])
    assert not _failed(log), _failed(log)             # the holder finishes undisturbed
    _exact(faults, vm, log)
    assert not faults.replica_state(vm).get('lock')
    reliability.add(scenario='lock: concurrent run', points=1, fired=1, reruns_ok=1, orphans_removed=0,
                    lock_refusals=1, bytes_verified=sum(c for _k, _p, _d, c in faults.replica_disks(vm)),
                    seconds=round(time.monotonic() - started, 1))


def test_crashed_runs_lease_expires(faults, reliability):
    vm = 'flt-lock2'
    faults.new_vm(vm)
    started = time.monotonic()
    rc, log = faults.run(faults.job(vm, 'lease-base'))
    assert rc == 0 and not _failed(log)
    faults.guest_write(vm, __import__('random').Random(5))
    ttl = 6
    # a run on another host (an AWX executor that was lost): only its lease can tell that it ended
    rc, log = faults.run(faults.job(vm, 'crashed-run', lock_ttl=ttl, process_elsewhere=True,
                                    fault={'at': {'disk': 1, 'fraction': 0.5}, 'action': 'self'}))
    assert rc == -9
    lock = faults.replica_state(vm)['lock']
    assert lock['run'] == 'crashed-run' and lock['expires'] - lock['acquired'] == ttl
    rc, early = faults.run(faults.job(vm, 'too-early'))
    refused = _failed(early)
    if time.time() < lock['expires'] - 1:         # this machine may be slow enough for the lease to run out first
        assert refused and refused[0]['result']['fault'] == 'LockHeld', early
        assert 'locked by run crashed-run' in refused[0]['result']['msg']
    time.sleep(max(0, lock['expires'] - time.time() + 0.5))
    rc, log = faults.run(faults.job(vm, 'takes-over'))
    assert rc == 0 and not _failed(log), _failed(log)
    removed = [s['name'] for r in steps(early) + steps(log) if r['step'] == 'snapshot_consolidate'
               for s in r['result']['removed']]
    assert removed == ['replicator-crashed-run']
    assert faults.vm_info(vm)['snapshots'] in (None, [])
    _exact(faults, vm, log)
    assert not faults.replica_state(vm).get('lock')
    reliability.add(scenario='lock: crashed run, lease expires', points=1, fired=1, reruns_ok=1, orphans_removed=1,
                    lock_refusals=1 if refused else 0,
                    bytes_verified=sum(c for _k, _p, _d, c in faults.replica_disks(vm)),
                    seconds=round(time.monotonic() - started, 1))


def _set_lock(faults, vm, lock):
    from pyVmomi import vim
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import encode
    replica = faults.lab.find_vm(faults.lab.connect('target'), vm + '_replica')
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in encode({'lock': lock})])
    task = replica.ReconfigVM_Task(spec)
    for _i in range(300):
        if task.info.state in ('success', 'error'):
            break
        time.sleep(0.1)
    assert task.info.state == 'success'


def test_a_copy_stops_when_its_run_loses_the_lock(faults, reliability):
    """The copy watches its run's lock (every 30 s): another run took it over -> the copy stops, nothing is
    committed, and the next run replicates byte-exact from the last restore point."""
    vm = 'flt-lock3'
    faults.new_vm(vm)
    started = time.monotonic()
    rc, log = faults.run(faults.job(vm, 'watch-base'))
    assert rc == 0 and not _failed(log)
    points = faults.replica_state(vm)['points']
    faults.guest_write(vm, __import__('random').Random(6))
    first = faults.job(vm, 'loses-lock', fault={'at': {'disk': 0, 'fraction': 0.01}, 'action': 'hold:45'})
    proc = _start(faults, first)
    try:
        _wait_for(first['log'], 'fault')                   # copying, its lock held
        now = int(time.time())
        _set_lock(faults, vm, {'owner': 'an operator', 'run': 'other-run', 'acquired': now, 'expires': now + 600})
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped = time.monotonic()
    failed = _failed(read_log(first['log']))
    assert failed and failed[0]['step'].startswith('disk_replicate'), failed
    assert 'run other-run of an operator took over the replica lock of run loses-lock' in failed[0]['result']['msg']
    assert 'nothing of this cycle is committed' in failed[0]['result']['msg']
    assert faults.replica_state(vm)['points'] == points          # no restore point of the run that lost its lock
    _set_lock(faults, vm, None)
    rc, log = faults.run(faults.job(vm, 'after-loss'))
    assert rc == 0 and not _failed(log), _failed(log)
    _exact(faults, vm, log)
    reliability.add(scenario='lock: taken over mid-copy, copy stops', points=1, fired=1, reruns_ok=1,
                    orphans_removed=0, lock_refusals=0,
                    bytes_verified=sum(c for _k, _p, _d, c in faults.replica_disks(vm)),
                    seconds=round(stopped - started, 1))
