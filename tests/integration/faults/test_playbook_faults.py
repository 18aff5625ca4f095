# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/replicate.yml (the real role) under faults, run as users run it with -vvv: ansible-playbook killed
mid-copy and rerun, a wrong password, a broken inventory; then no password and no vmware_soap_session cookie may
appear in any output (-vvv), the Ansible log, the reports or the lab logs."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import json
import os
import signal
import subprocess
import time

import pytest

import faults_playbook as playbook

pytestmark = pytest.mark.timeout(900)

VM = 'flt-play'


def _argv(base, *extra):
    return playbook.argv(base, '-vvv', *extra)


def _play(base, name, *extra):
    return playbook.play(base, name, '-vvv', *extra)


def _report(base):
    return playbook.report(os.path.join(base, 'reports'))


@pytest.fixture(scope='module')
def play(lab, tmp_path_factory):
    """The lab inventory narrowed to this test's VM; the role's defaults."""
    lab.new_vm(VM, disks_mib=(8, 4), cbt=False, seed=40, power_on=True)
    return playbook.inventory(lab, str(tmp_path_factory.mktemp('faults-play')), [VM])


def _compare(lab):
    return playbook.compare(lab, VM)


def test_playbook_killed_mid_copy_then_rerun(lab, play):
    started = time.monotonic()
    proc = _play(play, 'full')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _compare(lab)
    lab.labctl('write', VM, '--disk', 0, '--percent', 60, '--seed', 4)
    # throttled so the copy runs for a few seconds; killed (the whole process group) once disk_replicate runs
    child = subprocess.Popen(_argv(play, '-e', 'replicate_bandwidth_limit=1'),
                             env=playbook.env(play), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            snaps = lab.control('source', 'vm', name=VM).get('snapshots') or []
            if snaps:
                time.sleep(1.5)
                break
            time.sleep(0.2)
        assert child.poll() is None, 'the run ended before it could be killed'
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    orphans = [s['name'] for s in lab.control('source', 'vm', name=VM).get('snapshots') or []]
    assert orphans and orphans[0].startswith('replicator-')
    # the role's defaults (5 min lease): the killed run's process is gone from this host, so the rerun takes over
    proc = _play(play, 'rerun')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert _report(play)[VM]['status'] == 'success'
    assert lab.control('source', 'vm', name=VM).get('snapshots') in (None, [])
    assert _compare(lab)
    print('\nplaybook: killed mid-copy, rerun ok, orphan %s removed, %.1f s' % (orphans[0], time.monotonic() - started))


def test_wrong_password_and_broken_inventory(lab, play):
    with open(os.path.join(play, 'inventory', 'group_vars', 'all.yml')) as f:
        group = json.loads(f.read().split('\n', 1)[1])
    wrong = os.path.join(play, 'wrong.json')
    with open(wrong, 'w') as f:
        json.dump({'replicate_source': dict(group['replicate_source'], password='Wr0ng-' + 'x' * 12)}, f)
    for name in ('report.json', 'report.md'):       # the reports of the run before are not this run's
        if os.path.exists(os.path.join(play, 'reports', name)):
            os.unlink(os.path.join(play, 'reports', name))
    proc = _play(play, 'wrong', '-e', '@' + wrong)
    assert proc.returncode != 0
    assert 'Login failure (InvalidLogin)' in proc.stdout and 'Check username and password' in proc.stdout
    assert 'Wr0ng-' not in proc.stdout + proc.stderr
    # every VM failed, and the run still writes its report, which records the failure and its cause
    row = _report(play)[VM]
    assert row['status'] == 'failed' and 'InvalidLogin' in row['error'], row
    assert os.path.exists(os.path.join(play, 'reports', 'report.md'))
    assert 'Fail a VM whose cycle failed' in proc.stdout
    # an inventory without the connection settings: the role's argument spec says what is missing
    broken = os.path.join(play, 'broken.json')
    with open(broken, 'w') as f:
        json.dump({'replicate_source': 'not-a-dict', 'replicate_target_datastore_paths': []}, f)
    proc = _play(play, 'broken', '-e', '@' + broken)
    assert proc.returncode != 0
    assert 'replicate_source' in proc.stdout and 'argument' in proc.stdout.lower(), proc.stdout[-2000:]


def test_no_secret_anywhere(lab, play):
    """Runs after the two tests above (same module): every file they and the lab wrote is searched."""
    secrets = [lab.state['sites']['source']['password'], 'Wr0ng-' + 'x' * 12, 'vmware_soap_session']
    files = [p for p in glob.glob(os.path.join(play, '**', '*'), recursive=True) if os.path.isfile(p)]
    files = [p for p in files if not p.startswith(os.path.join(play, 'inventory'))    # holds the password by design
             and not p.endswith('wrong.json')]
    files += glob.glob(os.path.join(lab.workdir, '*', 'labd.log'))
    assert any(p.endswith('full.out') for p in files) and any(p.endswith('labd.log') for p in files)
    searched = 0
    for path in files:
        with open(path, 'rb') as f:
            data = f.read()
        searched += len(data)
        for secret in secrets:
            shown = secret if 'session' in secret else 'a password'
            assert secret.encode() not in data, '%s appears in %s' % (shown, path)
    assert searched > 10000
    print('\nsecrets: %d files, %d bytes searched, none found' % (len(files), searched))
