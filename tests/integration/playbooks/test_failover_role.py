# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover role through its playbooks against the lab, as users run them: planned failover (the replica gets
the source's last writes), commit, check mode, test + undo, unplanned with the source site unreachable, a failover
plan in two groups with a delay, and a plan stopped by a VM that fails."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from integration_servers import free_port

pytestmark = pytest.mark.timeout(1800)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VMS = ('fo01', 'fo02', 'fo03', 'fo04')
LOCAL = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory narrowed to this test's VMs (plus ghost01, which does not exist), each VM replicated once."""
    made = [lab.new_vm(name, disks_mib=(8, 4), cbt=False, seed=30, power_on=True) for name in VMS]
    out = tmp_path_factory.mktemp('fo-inventory')
    lab.labctl('inventory', '--output', out / 'inventory')
    hosts_file = out / 'inventory' / 'hosts.yml'
    hosts = json.loads(hosts_file.read_text().split('\n', 1)[1])
    hosts['all']['children']['replicated_vms']['hosts'] = dict((name, LOCAL) for name in VMS)
    hosts['all']['children']['with_ghost'] = {'hosts': dict((name, LOCAL) for name in VMS + ('ghost01',))}
    hosts_file.write_text('---\n' + json.dumps(hosts))
    proc = _run(out, 'replicate.yml')
    assert proc.returncode == 0, proc.stdout[-3000:]
    yield out
    for vm in made:
        lab.destroy_vm(vm)
    target = lab.connect('target')
    for name in VMS:
        try:
            lab.destroy_vm(lab.find_vm(target, name + '_replica'))
        except LookupError:
            pass


def _run(inventory, playbook, *extra, check=False):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=str(inventory / 'home'),
               ANSIBLE_LOCAL_TEMP=str(inventory / 'tmp'), ANSIBLE_FORKS='4')
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.dirname(os.path.dirname(os.path.dirname(REPO))) \
        if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')) \
        else os.path.join(REPO, '.build', 'acroot')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory / 'inventory'),
           os.path.join(REPO, 'playbooks', playbook)] + list(extra)
    if check:
        cmd.append('--check')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    with open(inventory / 'last-run.log', 'w') as f:  # the whole output of the last run, to read after a failure
        f.write(proc.stdout + proc.stderr)
    return proc


def _failover(inventory, playbook, *extra, check=False):
    """Run a failover playbook: (process, report {vm: record}, whole report)."""
    report_dir = inventory / 'fo-report'
    path = report_dir / 'failover-report.json'
    if path.exists():
        path.unlink()
    proc = _run(inventory, playbook, '-e', 'failover_report_dir=%s' % report_dir, *extra, check=check)
    assert path.exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads(path.read_text())
    return proc, dict((vm['vm'], vm) for vm in report['vms']), report


def _replica(lab, name):
    """(replica state, power state, failover snapshot present) read from the target."""
    vm = lab.find_vm(lab.connect('target'), name + '_replica')
    snaps = [s.name for s in vm.snapshot.rootSnapshotList] if vm.snapshot else []
    return decode(vm.config.extraConfig).get('state') or 'ready', str(vm.runtime.powerState), 'replicator-failover' in snaps


def _power(lab, name):
    return str(lab.find_vm(lab.connect('source'), name).runtime.powerState)


def _compare(lab, *names):
    out = subprocess.run([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare'] + list(names),
                         capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_check_mode_changes_nothing(lab, inventory):
    source = lab.find_vm(lab.connect('source'), 'fo02')
    before = (_power(lab, 'fo02'), _replica(lab, 'fo02'), source.snapshot)
    proc, report, whole = _failover(inventory, 'failover.yml', '-l', 'fo02', '-e', 'failover_action=planned',
                                    check=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert whole['check_mode'] is True and report['fo02']['status'] == 'success'
    actions = report['fo02']['actions']
    assert actions[0].startswith('would run incremental cycle') and actions[1] == 'would shut the source down (clean guest shutdown)'
    assert any(a.startswith('replica: ') for a in actions)
    assert (_power(lab, 'fo02'), _replica(lab, 'fo02'), source.snapshot) == before
    assert before[1] == ('ready', 'poweredOff', False)
    assert 'check mode: nothing changed' in proc.stdout


def test_planned_failover_carries_the_last_writes_then_commit(lab, inventory):
    # writes just before the planned failover: they must reach the replica through the final cycle
    written = lab.labctl('write', 'fo01', '--disk', 1, '--offset', 1 << 20, '--length', 70000, '--seed', 11)
    assert written['ranges']
    proc, report, whole = _failover(inventory, 'failover.yml', '-l', 'fo01', '-e', 'failover_action=planned')
    assert proc.returncode == 0, proc.stdout[-4000:]
    rec = report['fo01']
    assert rec['status'] == 'success' and rec['state'] == 'failed_over' and rec['power_state'] == 'poweredOn'
    assert rec['restore_point'] == whole['run_id'] + '-final'
    assert rec['actions'][1].startswith('source shut down (clean guest shutdown')
    assert rec['source_power_state_before'] == 'poweredOn'
    assert _power(lab, 'fo01') == 'poweredOff'
    assert _replica(lab, 'fo01') == ('failed_over', 'poweredOn', True)
    # the replica holds the source's last bytes, writes of just before the failover included
    assert _compare(lab, 'fo01')['equal']
    assert 'fo01' in proc.stdout and 'restore point %s-final' % whole['run_id'] in proc.stdout

    proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo01', '-e', 'failover_action=commit')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report['fo01']['state'] == 'committed'
    assert _replica(lab, 'fo01') == ('committed', 'poweredOn', False)


def test_test_failover_and_undo(lab, inventory):
    proc, report, _whole = _failover(inventory, 'test_failover.yml', '-l', 'fo02',
                                     '-e', '{"failover_test_network": "VM Network"}')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report['fo02']['state'] == 'test_failover' and report['fo02']['power_state'] == 'poweredOn'
    # (the test VMs have no NIC; replica_failover's own tests check the NICs on the test network)
    assert _power(lab, 'fo02') == 'poweredOn'  # the source is untouched
    assert _replica(lab, 'fo02') == ('test_failover', 'poweredOn', True)

    # the earlier playbook form still works: -e failover_state=undone
    proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo02', '-e', 'failover_state=undone')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report['fo02']['action'] == 'undo' and report['fo02']['state'] == 'ready'
    assert _replica(lab, 'fo02') == ('ready', 'poweredOff', False)


def test_unplanned_with_the_source_site_unreachable(lab, inventory):
    # a second cycle so that there are two restore points; fail over to the older one by id
    lab.labctl('write', 'fo02', '--disk', 0, '--offset', 0, '--length', 65536, '--seed', 5)
    proc = _run(inventory, 'replicate.yml', '-l', 'fo02')
    assert proc.returncode == 0, proc.stdout[-3000:]
    target = lab.connect('target')
    points = [p['id'] for p in decode(lab.find_vm(target, 'fo02_replica').config.extraConfig)['points']]
    assert len(points) >= 2
    dead = dict(lab.state['sites']['source'], port=free_port())
    source = {'hostname': dead['host'], 'port': dead['port'], 'username': dead['username'],
              'password': dead['password'], 'ca_path': dead['cafile']}
    down = json.dumps({'replicate_source': source, 'failover_restore_point': points[0]})
    proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo02', '-e', 'failover_action=unplanned',
                                     '-e', down)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert report['fo02']['state'] == 'failed_over' and report['fo02']['restore_point'] == points[0]
    assert _replica(lab, 'fo02') == ('failed_over', 'poweredOn', True)

    undo = json.dumps({'replicate_source': source, 'failover_source_available': False})
    proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo02', '-e', 'failover_action=undo', '-e', undo)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert _replica(lab, 'fo02') == ('ready', 'poweredOff', False)
    assert _compare(lab, 'fo02')['equal']  # back at the newest point


def test_planned_failover_stops_when_the_guest_does_not_shut_down(lab, inventory):
    """A hung guest and no forced power off: the planned failover stops, the source runs, the replica is unchanged."""
    lab.control('source', 'guest', method='POST', vm='fo02', shutdown='ignore')
    try:
        proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo02', '-e', 'failover_action=planned',
                                         '-e', '{"failover_shutdown_timeout": 1, "failover_force_shutdown": false}')
    finally:
        lab.control('source', 'guest', method='POST', vm='fo02', shutdown='clean')
    assert proc.returncode != 0
    rec = report['fo02']
    assert rec['status'] == 'failed' and rec['failed_task'] == 'Shut the source down through VMware Tools'
    assert 'is still running 1s after the guest shutdown request' in rec['error']
    assert _power(lab, 'fo02') == 'poweredOn'
    assert _replica(lab, 'fo02') == ('ready', 'poweredOff', False)
    assert 'source powered back on' not in proc.stdout  # it never went down


def test_plan_in_two_groups_with_a_delay(lab, inventory):
    plan = {'failover_plan': [{'name': 'first', 'vms': ['fo03'], 'delay': 3},
                              {'name': 'second', 'vms': ['fo04'], 'delay': 0}],
            'failover_test_network': 'VM Network', 'failover_action': 'test'}
    plan_file = inventory / 'plan.json'
    plan_file.write_text(json.dumps(plan))
    proc, report, whole = _failover(inventory, 'failover_plan.yml', '-l', 'fo03,fo04',
                                    '-e', 'failover_plan_file=%s' % plan_file)
    assert proc.returncode == 0, proc.stdout[-4000:]
    first, second = report['fo03'], report['fo04']
    assert first['status'] == second['status'] == 'success'
    assert (first['group'], second['group']) == ('first', 'second')
    # the second group started after the first finished, and after its delay
    assert first['started'] < first['finished'] <= second['started']
    assert second['started'] - first['finished'] >= 3
    assert whole['plan_stopped'] is False
    assert 'Plan: first [fo03] -> wait 3s -> second [fo04]' in proc.stdout
    for name in ('fo03', 'fo04'):
        assert _replica(lab, name) == ('test_failover', 'poweredOn', True)


def test_a_failing_vm_stops_the_plan(lab, inventory):
    plan = json.dumps({'failover_plan': [{'name': 'broken', 'vms': ['ghost01']},
                                         {'name': 'later', 'vms': ['fo03', 'fo04']}],
                       'failover_action': 'undo'})
    proc, report, whole = _failover(inventory, 'failover_plan.yml', '-e', 'replicate_hosts=with_ghost',
                                    '-l', 'ghost01,fo03,fo04', '-e', plan)
    assert proc.returncode != 0
    assert report['ghost01']['status'] == 'failed'
    assert "VM 'ghost01' of datacenter 'SRC-DC' not found" in report['ghost01']['error']
    assert report['fo03']['status'] == report['fo04']['status'] == 'not_started'
    assert whole['plan_stopped'] is True
    assert 'Plan STOPPED' in proc.stdout and 'not started, the failover plan stopped after a VM failed (ghost01)' in proc.stdout
    for name in ('fo03', 'fo04'):  # later groups untouched
        assert _replica(lab, name) == ('test_failover', 'poweredOn', True)

    proc, report, _whole = _failover(inventory, 'failover.yml', '-l', 'fo03,fo04', '-e', 'failover_action=undo')
    assert proc.returncode == 0, proc.stdout[-4000:]
    for name in ('fo03', 'fo04'):
        assert _replica(lab, name) == ('ready', 'poweredOff', False)
