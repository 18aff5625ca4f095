# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The results of a run where AWX sees them, through ansible-runner (what AWX runs a job with): replicate.yml with
`--limit` one VM (the lab inventory lists localhost too, which the limit leaves out) still prints the summary (a job
event), publishes the run with set_stats (the `artifact_data` of the playbook_on_stats event, which AWX keeps as the
job's artifacts) and writes the report files where replicate_report_dir says, and nowhere when it is "".
rpo_check.yml fails naming the VM whose newest restore point is older than replicate_rpo_target, and a VM that has
no replica, and passes with a target the restore point meets."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

import pytest

from integration_servers import ansible_settings

ansible_runner = pytest.importorskip('ansible_runner')

pytestmark = pytest.mark.timeout(300)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VM = 'rr-01'          # a name a variable cannot have: its per-VM artifact key is replicator_vm_rr_01
GHOST = 'rrghost01'   # in the inventory, no such VM, never replicated


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory (localhost in replicator_lab) with `replicated_vms` = this test's VM and one without a VM."""
    made = lab.new_vm(VM, disks_mib=(4,), cbt=True, seed=20, power_on=True)
    out = tmp_path_factory.mktemp('run-results')
    hosts = lab.inventory(out, [VM, GHOST])
    assert 'localhost' in hosts['all']['children']['replicator_lab']['hosts']
    (out / 'runner').mkdir()
    yield out
    for site, name in (('source', VM), ('target', VM + '_replica')):
        try:
            lab.destroy_vm(made if site == 'source' else lab.find_vm(lab.connect(site), name))
        except LookupError:
            pass


def _run(inv, ident, playbook, limit=None, **extravars):
    env = ansible_settings(inv)
    runner = ansible_runner.run(private_data_dir=str(inv / 'runner'), ident=ident,
                                playbook=os.path.join(REPO, 'playbooks', playbook), limit=limit,
                                inventory=str(inv / 'inventory'), envvars=env, extravars=extravars or None,
                                quiet=True, timeout=240)
    events = list(runner.events)
    with open(inv / (ident + '.log'), 'w') as f:  # to read after a failure
        f.write(runner.stdout.read())
    return runner, events


def _artifacts(events):
    """The set_stats data of the run, as AWX reads it: the playbook_on_stats event's artifact_data."""
    stats = [e for e in events if e.get('event') == 'playbook_on_stats']
    assert len(stats) == 1
    return stats[0]['event_data'].get('artifact_data') or {}


def _task_msg(events, task):
    """The `msg` of the ok events of a task, one per host that ran it."""
    return [e['event_data']['res']['msg'] for e in events
            if e.get('event') == 'runner_on_ok' and e['event_data'].get('task') == task]


def _failed(events, task='Fail a VM whose replica missed its RPO'):
    return [e for e in events if e.get('event') == 'runner_on_failed' and e['event_data'].get('task') == task]


def _text(events):
    return '\n'.join(e.get('stdout', '') for e in events)


def test_a_limited_run_reports_and_publishes_its_vms(lab, inventory):
    reports = inventory / 'reports-limited'
    runner, events = _run(inventory, 'replicate-limited', 'replicate.yml', limit=VM,
                          replicate_report_dir=str(reports))
    assert runner.rc == 0 and runner.status == 'successful', _text(events)[-3000:]
    # the summary is a job event, and covers the VM that ran, not the one the limit left out
    summary = _task_msg(events, 'Summary')
    assert len(summary) == 1, _text(events)[-3000:]
    assert summary[0][0].startswith('Replication run ') and summary[0][0].endswith('1 of 1 VMs replicated')
    assert any(line.startswith(VM) and ' ok ' in line for line in summary[0])
    assert GHOST not in ' '.join(summary[0])
    # set_stats: the run with the VM's row, and the VM's own key
    artifacts = _artifacts(events)
    run = artifacts['replicator_run']
    assert run['vms_total'] == 1 and run['vms_succeeded'] == 1 and run['vms_failed'] == 0 and run['failed_vms'] == []
    row = run['vms'][VM]
    assert row['status'] == 'success' and row['restore_point'] == run['run_id'] and row['error'] == ''
    assert row['replica'] == VM + '_replica' and row['bytes_sent'] > 0 and row['bytes_written'] > 0
    assert artifacts['replicator_vm_rr_01'] == row
    assert set(artifacts) == {'replicator_run', 'replicator_vm_rr_01'}
    password = lab.state['sites']['source']['password']
    assert password not in json.dumps(artifacts) and lab.state['sites']['target']['password'] not in json.dumps(artifacts)
    # the report files, where asked for, of the same run
    with open(reports / 'report.json') as f:
        report = json.load(f)
    assert report['run_id'] == run['run_id'] and [vm['vm'] for vm in report['vms']] == [VM]
    assert '| %s |' % VM in (reports / 'report.md').read_text()

    # no report directory: no files, the same results in the job
    runner, events = _run(inventory, 'replicate-no-files', 'replicate.yml', limit=VM, replicate_report_dir='')
    assert runner.rc == 0, _text(events)[-3000:]
    run = _artifacts(events)['replicator_run']
    assert run['vms'][VM]['status'] == 'success' and run['vms'][VM]['bytes_sent'] == 0  # nothing changed
    assert not [e for e in events if e['event_data'].get('task', '').startswith('Write report')
                and e.get('event') == 'runner_on_ok']

    # the whole group: the VM that does not exist fails the run, and is in the summary and the artifacts
    runner, events = _run(inventory, 'replicate-all', 'replicate.yml', replicate_report_dir=str(reports))
    assert runner.rc != 0
    run = _artifacts(events)['replicator_run']
    assert run['vms_total'] == 2 and run['failed_vms'] == [GHOST]
    assert "VM '%s' of datacenter 'SRC-DC' not found" % GHOST in run['vms'][GHOST]['error']
    assert run['vms'][VM]['status'] == 'success'
    assert '1 of 2 VMs replicated' in _task_msg(events, 'Summary')[0][0]
    failed = [e for e in events if e.get('event') == 'runner_on_failed'
              and e['event_data']['task'] == 'Fail a VM whose cycle failed']
    assert [e['event_data']['host'] for e in failed] == [GHOST]
    assert run['vms'][GHOST]['error'] in failed[0]['event_data']['res']['msg']


def test_rpo_check_names_the_vms_that_missed_their_target(lab, inventory):
    if not (inventory / 'reports-limited' / 'report.json').exists():
        _run(inventory, 'replicate-for-rpo', 'replicate.yml', limit=VM)
    time.sleep(2.5)
    # a target the newest restore point has outlived
    runner, events = _run(inventory, 'rpo-missed', 'rpo_check.yml', limit=VM, replicate_rpo_target='2s')
    assert runner.rc != 0, _text(events)[-3000:]
    failed = _failed(events)
    assert [e['event_data']['host'] for e in failed] == [VM]
    assert 'RPO missed by %s: the newest restore point' % VM in failed[0]['event_data']['res']['msg']
    table = _task_msg(events, 'RPO of every VM')[0]
    assert table[0] == 'RPO check: 0 of 1 VMs within their target, missed by %s' % VM
    assert any(line.startswith(VM) and line.endswith('MISSED') for line in table)
    rpo = _artifacts(events)['replicator_rpo']
    assert rpo['missed_vms'] == [VM] and rpo['vms'][VM]['met'] is False and rpo['vms'][VM]['age_seconds'] >= 2
    assert rpo['vms'][VM]['target_seconds'] == 2 and rpo['vms'][VM]['replica'] == VM + '_replica'

    # a target it meets
    runner, events = _run(inventory, 'rpo-met', 'rpo_check.yml', limit=VM, replicate_rpo_target='1d')
    assert runner.rc == 0 and runner.status == 'successful', _text(events)[-3000:]
    assert _task_msg(events, 'RPO of every VM')[0][0] == 'RPO check: 1 of 1 VMs within their target'
    rpo = _artifacts(events)['replicator_rpo']
    assert rpo['missed_vms'] == [] and rpo['vms'][VM]['met'] is True and rpo['vms'][VM]['restore_point']
    assert _artifacts(events)['replicator_rpo_vm_rr_01'] == rpo['vms'][VM]

    # every VM of the group, with the role's default target: the VM without a replica is named
    runner, events = _run(inventory, 'rpo-all', 'rpo_check.yml')
    assert runner.rc != 0
    failed = _failed(events)
    assert [e['event_data']['host'] for e in failed] == [GHOST]
    assert 'RPO missed by %s: no replica of %s on the DR site' % (GHOST, GHOST) in failed[0]['event_data']['res']['msg']
    rpo = _artifacts(events)['replicator_rpo']
    assert rpo['missed_vms'] == [GHOST] and rpo['vms'][VM]['met'] is True and rpo['vms'][VM]['target_seconds'] == 86400
