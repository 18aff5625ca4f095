# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/replicate.yml with the role's own defaults (5 minute lease, 1 hour orphan age) under what users and AWX
do to a run: SIGKILL of ansible-playbook, and the SIGINT / SIGTERM of a cancel, mid-copy; then the copies must stop
by themselves within seconds and a rerun must succeed at once, byte-exact, with no manual step. And two, then five
runs started at the same moment on the same new VMs: one replica per VM, one run replicates each VM, the others are
refused with a message that names the run holding it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import signal
import subprocess
import time

import pytest

import faults_playbook as playbook
from faults_points import accepted_points, replica_info

pytestmark = pytest.mark.timeout(900)

VM = 'flt-live'
# a copy must notice that its run is gone and stop within this many seconds (it checks the process every second)
COPY_STOP_BOUND = 15


def _inventory(lab, base, vms):
    """The lab inventory narrowed to `vms`, with nothing shortened: the role's defaults apply."""
    playbook.inventory(lab, base, vms)
    with open(os.path.join(base, 'inventory', 'group_vars', 'all.yml')) as f:
        group = json.loads(f.read().split('\n', 1)[1])
    assert not [k for k in group if k in ('replicate_lock_ttl', 'replicate_orphan_min_age')], group
    return base


def _copies(base):
    """PIDs of the disk copies (the module processes of async disk_replicate jobs; not async_wrapper's watcher,
    which only polls the job every 5 s) started by runs of this test's inventory."""
    return _processes(base, b'AnsiballZ_disk_replicate')


def _processes(base, module):
    """PIDs of live module processes of `module` run with this test's ANSIBLE_HOME."""
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                cmdline = f.read()
            if module not in cmdline or b'async_wrapper' in cmdline:
                continue
            with open('/proc/%s/environ' % name, 'rb') as f:
                if (base + '/home').encode() not in f.read():
                    continue
            with open('/proc/%s/stat' % name, 'rb') as f:
                if f.read().rsplit(b')', 1)[1].split()[0] == b'Z':
                    continue
        except OSError:
            continue
        pids.append(int(name))
    return pids


def _replica_lock(lab, source_vm):
    """The replica's run lock as stored in its extraConfig (None when free)."""
    from pyVmomi import vim
    si = lab.connect('target')
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        for vm in view.view:
            extra = dict((o.key, o.value) for o in vm.config.extraConfig or [])
            if json.loads(extra.get('replicator.source') or '{}').get('name') == source_vm:
                return json.loads(extra['replicator.lock']) if extra.get('replicator.lock') else None
    finally:
        view.Destroy()
    return None


def _replicas(lab, source_vm):
    """Names and moids of the target VMs that replicate `source_vm` (by the source name in their metadata)."""
    from pyVmomi import vim
    si = lab.connect('target')
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    found = []
    for vm in view.view:
        extra = dict((o.key, o.value) for o in vm.config.extraConfig or [])
        source = json.loads(extra.get('replicator.source') or '{}')
        if source.get('name') == source_vm:
            found.append((vm.name, vm._moId))
    view.Destroy()
    return found


@pytest.fixture(scope='module')
def play(lab, tmp_path_factory):
    lab.new_vm(VM, disks_mib=(12, 6), cbt=False, seed=40, power_on=True)
    base = _inventory(lab, str(tmp_path_factory.mktemp('live')), [VM])
    proc = playbook.play(base, 'full')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert playbook.compare(lab, VM)
    return base


@pytest.mark.parametrize('how', ['SIGKILL', 'SIGTERM', 'SIGINT'])
def test_killed_or_cancelled_mid_copy_copies_stop_and_rerun_succeeds(lab, faults, play, how):
    lab.labctl('write', VM, '--disk', 0, '--percent', 70, '--seed', {'SIGKILL': 5, 'SIGTERM': 6, 'SIGINT': 7}[how])
    # throttled so that the copy is still running when the signal comes
    out = open(os.path.join(play, 'killed-%s.out' % how), 'w')
    child = subprocess.Popen(playbook.argv(play, '-e', 'replicate_bandwidth_limit=1'), env=playbook.env(play),
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        copying = 0
        while time.monotonic() < deadline and child.poll() is None and copying < 5:    # copying for a second
            copying = copying + 1 if _copies(play) else 0
            time.sleep(0.2)
        assert child.poll() is None and _copies(play), 'the run ended before its copies could be interrupted'
        # AWX cancels a job with SIGINT, then SIGTERM; a crash is a SIGKILL of the playbook (not of the copies,
        # which run detached in sessions of their own)
        os.kill(child.pid, getattr(signal, how))
        child.wait(120)
        ended = time.monotonic()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)
        out.close()
    while _copies(play) and time.monotonic() - ended < 120:
        time.sleep(0.2)
    stopped = time.monotonic() - ended
    assert not _copies(play), 'copies still running %.0f s after the run ended' % stopped
    assert stopped <= COPY_STOP_BOUND, 'the copies outlived their run by %.1f s' % stopped
    left = [s['name'] for s in lab.control('source', 'vm', name=VM).get('snapshots') or []]
    started = time.monotonic()
    proc = playbook.play(play, 'rerun-%s' % how)       # at once, with the role's defaults
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert playbook.report(os.path.join(play, 'reports'))[VM]['status'] == 'success'
    assert lab.control('source', 'vm', name=VM).get('snapshots') in (None, [])
    assert playbook.compare(lab, VM)
    # one list of restore points: what replica_info lists is what failover accepts; the killed run's is neither
    listed = [p['id'] for p in replica_info(faults, VM)['points']]
    killed = [name[len('replicator-'):] for name in left]
    accepted, refused = accepted_points(faults, VM, listed + killed)
    assert accepted == listed and sorted(refused) == sorted(killed), (listed, accepted, refused)
    print('\n%s: copies stopped %.1f s after the run ended; snapshots left %s removed by the rerun (%.1f s)'
          % (how, stopped, left, time.monotonic() - started))


def _keepers(base):
    """PIDs of run_keeper module processes of runs of this test's inventory."""
    return _processes(base, b'AnsiballZ_run_keeper')


def test_a_copy_longer_than_the_lease_keeps_its_lock_and_the_keeper_ends_with_the_run(lab, play):
    """The lease is shortened here only (this test is about it): a copy that takes twice the lease succeeds, because
    the run's keeper renews the lease while the playbook lives; the keeper ends with the playbook."""
    lab.labctl('write', VM, '--disk', 0, '--percent', 90, '--seed', 8)
    started = time.monotonic()
    with open(os.path.join(play, 'long-copy.out'), 'w') as out:
        child = subprocess.Popen(playbook.argv(play, '-e', 'replicate_lock_ttl=9', '-e', 'replicate_bandwidth_limit=0.5'),
                                 env=playbook.env(play), stdout=out, stderr=subprocess.STDOUT)
        leases = set()
        try:
            while child.poll() is None and time.monotonic() - started < 300:
                lock = _replica_lock(lab, VM)
                if lock:
                    leases.add((lock['acquired'], lock['expires']))
                time.sleep(1)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(60)
    took = time.monotonic() - started
    assert child.returncode == 0
    assert took > 18, 'the run took %.1f s, not longer than twice the lease' % took
    acquired = min(a for a, _e in leases)
    assert max(e for _a, e in leases) - acquired > 2 * 9, 'the lease was not renewed: %s' % sorted(leases)
    assert playbook.report(os.path.join(play, 'reports'))[VM]['status'] == 'success'
    assert playbook.compare(lab, VM)
    deadline = time.monotonic() + 10
    while _keepers(play) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _keepers(play), 'the run keeper outlived its playbook'
    print('\nlease 9 s, copy %.1f s: renewed by the keeper, which ended with the run' % took)


@pytest.mark.parametrize('runs', [2, 5])
def test_runs_started_together_make_one_replica_and_one_run_replicates(lab, tmp_path, runs):
    vms = ['flt-race%d-a' % runs, 'flt-race%d-b' % runs]
    for seed, vm in enumerate(vms):
        lab.new_vm(vm, disks_mib=(4,), cbt=True, seed=50 + seed, power_on=True)
    base = _inventory(lab, str(tmp_path), vms)
    children = []
    for index in range(runs):
        report = os.path.join(base, 'reports-%d' % index)
        out = open(os.path.join(base, 'run-%d.out' % index), 'w')
        children.append((report, out, subprocess.Popen(playbook.argv(base, '-e', 'replicate_report_dir=%s' % report),
                                                       env=playbook.env(base), stdout=out, stderr=subprocess.STDOUT)))
    try:
        for _report_dir, _out, child in children:
            child.wait(600)
    finally:
        for _report_dir, out, child in children:
            if child.poll() is None:
                child.kill()
                child.wait(30)
            out.close()
    reports = [playbook.report(report_dir) for report_dir, _out, _child in children]
    for vm in vms:
        rows = [r[vm] for r in reports]
        won = [row for row in rows if row['status'] == 'success']
        assert len(won) == 1, rows
        for row in rows:
            if row['status'] != 'success':
                assert 'LockHeld' in row['error'] and 'locked by run %s of ' % won[0]['restore_point'] in row['error'], row
        assert len(_replicas(lab, vm)) == 1, _replicas(lab, vm)
        assert lab.control('source', 'vm', name=vm).get('snapshots') in (None, [])
        assert playbook.compare(lab, vm)
    print('\n%d runs at once: one replica and one replicating run per VM, %d refusals'
          % (runs, sum(1 for r in reports for vm in vms if r[vm]['status'] != 'success')))


def test_a_report_that_cannot_be_written_names_the_setting_and_hides_no_result(lab, play, tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a directory')
    proc = playbook.play(play, 'bad-report', '-e', 'replicate_report_dir=%s/reports' % blocker)
    assert proc.returncode == 0, proc.stdout[-3000:]          # the VM replicated: the run did not fail
    assert 'The run report could not be written to replicate_report_dir=%s/reports' % blocker in proc.stdout
    assert '1 of 1 VMs replicated' in proc.stdout
    assert 'WARNING: no report files: writing to replicate_report_dir=' in proc.stdout
