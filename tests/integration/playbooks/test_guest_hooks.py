# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Application hooks of the replicate role, against the lab, through playbooks/replicate.yml.

One run replicates seven VMs, each showing one behaviour:
  hk-app    command hooks through VMware Tools (the lab's guest operations), quiesced  -> application
  hk-tasks  task-file hooks on the VM's own inventory connection (a local guest stand-in): the pre hook writes
            "flushed" data into the VM's disk, the post hook writes more; the restore point holds the first write
            and not the second, so the snapshot was taken between them                 -> application
  hk-abort  the pre hook fails, policy abort: the cycle fails, the post hook still runs, no snapshot
  hk-cont   the pre hook fails, policy continue                                          -> crash
  hk-qfail  the lab fails the quiesced snapshot, quiescing required: the post hook runs after the failed snapshot
  hk-qtry   the lab fails the quiesced snapshot, quiescing tried: crash-consistent fallback, post hook ran -> crash
  hk-slow   the pre hook (a task file) runs past its timeout, policy abort: failed, post hook ran
Then a second cycle of hk-tasks whose hook fails with policy continue (a newer crash point), and a test failover
asking for the latest application-consistent point, which goes back to the first cycle's data.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(1500)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MIB = 1 << 20
VMS = ('hk-app', 'hk-tasks', 'hk-abort', 'hk-cont', 'hk-qfail', 'hk-qtry', 'hk-slow')
ROLE = 'TASK [replicator.vsphere.replicate : '

PRE_TASKS = '''---
- name: Test application flushes its data into the VM's disk
  ansible.builtin.command:
    argv: "{{ hk_labctl + ['write', inventory_hostname, '--disk', '0', '--offset', '1048576', '--length', '65536',
           '--seed', '11'] }}"
  changed_when: true
- name: Log the pre-snapshot hook
  ansible.builtin.shell: echo pre >> {{ hk_log }}
  changed_when: true
'''
POST_TASKS = '''---
- name: Test application resumes writing
  ansible.builtin.command:
    argv: "{{ hk_labctl + ['write', inventory_hostname, '--disk', '0', '--offset', '2097152', '--length', '65536',
           '--seed', '12'] }}"
  changed_when: true
- name: Log the post-snapshot hook
  ansible.builtin.shell: echo post >> {{ hk_log }}
  changed_when: true
'''
SLOW_TASKS = '''---
- name: Log the slow hook
  ansible.builtin.shell: echo pre >> {{ hk_log }}
  changed_when: true
- name: A flush that hangs
  ansible.builtin.command: sleep 60
  changed_when: true
'''
POST_LOG_TASKS = '''---
- name: Log the post-snapshot hook
  ansible.builtin.shell: echo post >> {{ hk_log }}
  changed_when: true
'''
FAIL_TASKS = '''---
- name: A flush that fails
  ansible.builtin.command: /bin/false
  changed_when: false
'''


def _command_hooks(pre='echo pre >> hooks.log', post='echo post >> hooks.log', **extra):
    hooks = {'replicate_hooks': {'pre': {'command': pre, 'timeout': 60}, 'post': {'command': post}}}
    hooks.update(extra)
    return hooks


@pytest.fixture(scope='module')
def setup(lab, tmp_path_factory):
    out = tmp_path_factory.mktemp('hooks')
    made = [lab.new_vm(name, disks_mib=(4,), cbt=False, seed=25, power_on=True) for name in VMS]
    for name, text in (('pre.yml', PRE_TASKS), ('post.yml', POST_TASKS), ('slow.yml', SLOW_TASKS),
                       ('post-log.yml', POST_LOG_TASKS), ('fail.yml', FAIL_TASKS)):
        (out / name).write_text(text)
    for name in ('hk-qfail', 'hk-qtry'):
        lab.control('source', 'guestops', method='POST', vm=name, quiesce='fail')
    lab.labctl('inventory', '--output', out / 'inventory')
    hosts_file = out / 'inventory' / 'hosts.yml'
    hosts = json.loads(hosts_file.read_text().split('\n', 1)[1])
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
             'hk_labctl': [sys.executable, lab.labctl_path, '--workdir', lab.workdir],
             'replicate_guest_username': 'root', 'replicate_guest_password': lab.state['sites']['source']['password']}
    per_vm = {
        'hk-app': _command_hooks(replicate_quiesce='try'),
        'hk-tasks': {'replicate_quiesce': 'require', 'hk_log': str(out / 'hk-tasks.log'),
                     'replicate_hooks': {'pre': {'tasks': str(out / 'pre.yml')}, 'post': {'tasks': str(out / 'post.yml')}}},
        'hk-abort': _command_hooks(pre='echo pre >> hooks.log; exit 3', replicate_quiesce='try'),
        'hk-cont': _command_hooks(pre='echo pre >> hooks.log; exit 3', replicate_quiesce='try',
                                  replicate_hook_failure='continue'),
        'hk-qfail': _command_hooks(replicate_quiesce='require'),
        'hk-qtry': _command_hooks(replicate_quiesce='try'),
        'hk-slow': {'replicate_quiesce': 'try', 'hk_log': str(out / 'hk-slow.log'),
                    'replicate_hooks': {'pre': {'tasks': str(out / 'slow.yml'), 'timeout': 3},
                                        'post': {'tasks': str(out / 'post-log.yml')}}},
    }
    hosts['all']['children']['replicated_vms']['hosts'] = dict((name, dict(local, **per_vm[name])) for name in VMS)
    hosts_file.write_text('---\n' + json.dumps(hosts))
    yield out
    for name in ('hk-qfail', 'hk-qtry'):
        lab.control('source', 'guestops', method='POST', vm=name, quiesce='ok')
    for vm in made:
        lab.destroy_vm(vm)


def _env(out):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=str(out / 'home'), ANSIBLE_LOCAL_TEMP=str(out / 'tmp'))
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.dirname(os.path.dirname(os.path.dirname(REPO))) \
        if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')) \
        else os.path.join(REPO, '.build', 'acroot')
    return env


def _play(out, playbook, *extra):
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(out / 'inventory'),
           '--forks', str(len(VMS)), playbook] + list(extra)
    return subprocess.run(cmd, env=_env(out), capture_output=True, text=True, timeout=900, check=False)


def _replicate(out, *extra):
    proc = _play(out, os.path.join(REPO, 'playbooks', 'replicate.yml'), *extra)
    if not os.path.exists(out / 'reports' / 'report.json'):
        raise AssertionError('no report (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    with open(out / 'reports' / 'report.json') as f:
        report = json.load(f)
    return proc, dict((vm['vm'], vm) for vm in report['vms'])


def _guest_log(lab, name):
    path = os.path.join(lab.control('source', 'guestops', vm=name)['dir'], 'hooks.log')
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def _steps(vm):
    return [(s['step'], s['status'], s['how']) for s in vm.get('steps', [])]


def _points(lab, name):
    extra = dict((o.key, o.value) for o in lab.find_vm(lab.connect('target'), name + '_replica').config.extraConfig)
    return json.loads(extra.get('replicator.points') or '[]')


def _read(path, offset, length=65536):
    with open(path, 'rb') as f:
        f.seek(offset)
        return f.read(length)


def _disk_file(lab, site, name):
    return lab.control(site, 'vm', name=name)['disks'][0]['data']


@pytest.fixture(scope='module')
def first_run(lab, setup):
    return _replicate(setup)


def test_hook_order_and_application_label(lab, setup, first_run):
    proc, report = first_run
    assert proc.returncode != 0, 'the VMs that fail on purpose fail the run'
    out = proc.stdout
    # the order in the output: pre hook, then the snapshot, then the post hook
    names = ('Hook pre-snapshot]', 'Snapshot with quiescing]', 'Hook post-snapshot]')
    pre, snap, post = (out.index(ROLE + name) for name in names)
    assert pre < snap < post, out[-4000:]
    for name in ('hk-app', 'hk-tasks'):
        assert report[name]['status'] == 'success', report[name]
        assert report[name]['consistency'] == 'application'
        assert _points(lab, name)[-1]['consistency'] == 'application'
    assert _steps(report['hk-app']) == [('pre-snapshot hook', 'ok', 'command'), ('snapshot', 'ok', 'quiesced'),
                                        ('post-snapshot hook', 'ok', 'command')]
    assert _steps(report['hk-tasks']) == [('pre-snapshot hook', 'ok', 'tasks'), ('snapshot', 'ok', 'quiesced'),
                                          ('post-snapshot hook', 'ok', 'tasks')]
    assert _guest_log(lab, 'hk-app') == ['pre', 'post']  # ran in the lab's guest through guest operations
    with open(setup / 'hk-tasks.log') as f:
        assert f.read().split() == ['pre', 'post']
    # the task-file hooks ran on the VM's own connection, named as the user wrote them
    flush, resume = out.index("Test application flushes its data into the VM's disk]"), \
        out.index('Test application resumes writing]')
    assert pre < flush < snap < post < resume
    # report.md and the summary show the label and the sequence
    md = (setup / 'reports' / 'report.md').read_text()
    assert '## Snapshot sequence' in md
    assert '| hk-app | application | pre-snapshot hook ok (command' in md
    assert 'sequence: pre-snapshot hook ok -> snapshot ok -> post-snapshot hook ok' in out
    assert 'restore point %s (application)' % report['hk-app']['restore_point'] in out


def test_restore_point_holds_the_pre_hook_write_not_the_post_hook_write(lab, first_run):
    source, replica = _disk_file(lab, 'source', 'hk-tasks'), _disk_file(lab, 'target', 'hk-tasks_replica')
    assert _read(source, MIB) == _read(replica, MIB)  # written by the pre hook, before the snapshot
    assert _read(source, 2 * MIB) != _read(replica, 2 * MIB)  # written by the post hook, after it


def test_policy_abort_fails_the_cycle_after_the_post_hook(lab, first_run):
    proc, report = first_run
    vm = report['hk-abort']
    assert vm['status'] == 'failed' and 'Abort the cycle' in vm['failed_task']
    assert 'exited with rc 3' in vm['error']
    assert _steps(vm) == [('pre-snapshot hook', 'failed', 'command'), ('post-snapshot hook', 'ok', 'command')]
    assert _guest_log(lab, 'hk-abort') == ['pre', 'post']
    assert _points(lab, 'hk-abort') == []
    assert lab.find_vm(lab.connect('source'), 'hk-abort').snapshot is None
    assert 'hk-abort   FAILED in Abort the cycle' in proc.stdout


def test_policy_continue_gives_a_crash_point(lab, first_run):
    vm = first_run[1]['hk-cont']
    assert vm['status'] == 'success' and vm['consistency'] == 'crash'
    assert _steps(vm) == [('pre-snapshot hook', 'failed', 'command'), ('snapshot', 'ok', 'crash'),
                          ('post-snapshot hook', 'ok', 'command')]
    assert _guest_log(lab, 'hk-cont') == ['pre', 'post']
    assert _points(lab, 'hk-cont')[-1]['consistency'] == 'crash'


def test_post_hook_runs_after_a_failed_snapshot(lab, first_run):
    vm = first_run[1]['hk-qfail']
    assert vm['status'] == 'failed' and 'Refuse a crash-consistent point' in vm['failed_task']
    assert 'quiescing' in vm['error']
    assert _steps(vm) == [('pre-snapshot hook', 'ok', 'command'), ('snapshot', 'failed', 'quiesced'),
                          ('post-snapshot hook', 'ok', 'command')]
    assert _guest_log(lab, 'hk-qfail') == ['pre', 'post']
    fallback = first_run[1]['hk-qtry']
    assert fallback['status'] == 'success' and fallback['consistency'] == 'crash'
    assert _steps(fallback) == [('pre-snapshot hook', 'ok', 'command'), ('snapshot', 'failed', 'quiesced'),
                                ('snapshot', 'ok', 'crash'), ('post-snapshot hook', 'ok', 'command')]
    for name in VMS:
        assert lab.find_vm(lab.connect('source'), name).snapshot is None


def test_hook_timeout_aborts(lab, setup, first_run):
    vm = first_run[1]['hk-slow']
    assert vm['status'] == 'failed' and 'timed out after 3 second' in vm['error'].lower()
    assert _steps(vm) == [('pre-snapshot hook', 'failed', 'tasks'), ('post-snapshot hook', 'ok', 'tasks')]
    with open(setup / 'hk-slow.log') as f:
        assert f.read().split() == ['pre', 'post']


FAILOVER = '''- hosts: localhost
  gather_facts: false
  module_defaults:
    group/replicator.vsphere.vsphere:
      hostname: "{{ lab_target.hostname }}"
      port: "{{ lab_target.port }}"
      username: "{{ lab_target.username }}"
      password: "{{ lab_target.password }}"
      ca_path: "{{ lab_target.ca_path }}"
  tasks:
    - name: Replica info
      replicator.vsphere.replica_info:
        replica_name: hk-tasks_replica
      register: info
    - name: Latest point of any consistency (check mode)
      replicator.vsphere.replica_failover:
        replica_name: hk-tasks_replica
        state: test
        test_network: DR Network
        power_on: false
        target_datastore_paths: "{{ replicate_target_datastore_paths }}"
      check_mode: true
      register: any_point
    - name: Test failover to the latest application-consistent point
      replicator.vsphere.replica_failover:
        replica_name: hk-tasks_replica
        state: test
        test_network: DR Network
        power_on: false
        restore_point_consistency: application
        target_datastore_paths: "{{ replicate_target_datastore_paths }}"
      register: app_point
    - name: Save the results
      ansible.builtin.copy:
        content: "{{ {'info': info, 'any': any_point, 'app': app_point} | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
'''

UNDO = '''- hosts: localhost
  gather_facts: false
  tasks:
    - name: Undo the test failover
      replicator.vsphere.replica_failover:
        hostname: "{{ lab_target.hostname }}"
        port: "{{ lab_target.port }}"
        username: "{{ lab_target.username }}"
        password: "{{ lab_target.password }}"
        ca_path: "{{ lab_target.ca_path }}"
        replica_name: hk-tasks_replica
        state: undone
        target_datastore_paths: "{{ replicate_target_datastore_paths }}"
'''


def test_failover_to_the_latest_application_consistent_point(lab, setup, first_run):
    first_point = first_run[1]['hk-tasks']['restore_point']
    written = lab.labctl('write', 'hk-tasks', '--disk', 0, '--offset', 3 * MIB, '--length', 65536, '--seed', 13)
    assert written['ranges']
    override = json.dumps({'replicate_hooks': {'pre': {'tasks': str(setup / 'fail.yml')}},
                           'replicate_hook_failure': 'continue'})
    proc, report = _replicate(setup, '--limit', 'hk-tasks,localhost', '-e', override)
    assert proc.returncode == 0, proc.stdout[-3000:]
    second_point = report['hk-tasks']['restore_point']
    assert report['hk-tasks']['consistency'] == 'crash' and second_point != first_point
    assert [p['consistency'] for p in _points(lab, 'hk-tasks')] == ['application', 'crash']

    (setup / 'failover.yml').write_text(FAILOVER)
    (setup / 'undo.yml').write_text(UNDO)
    result_file = setup / 'failover.json'
    proc = _play(setup, str(setup / 'failover.yml'), '-e', 'result_file=%s' % result_file)
    assert proc.returncode == 0, proc.stdout[-3000:]
    try:
        with open(result_file) as f:
            results = json.load(f)
        replica = results['info']['replicas'][0]
        labels = [(p['id'], p['consistency']) for p in replica['points']]
        assert labels == [(first_point, 'application'), (second_point, 'crash')]
        assert results['any']['restore_point']['id'] == second_point
        app = results['app']['restore_point']
        assert app['id'] == first_point and app['consistency'] == 'application'
        # the replica is back at the first cycle: the write made between the cycles is not there
        source, replica_disk = _disk_file(lab, 'source', 'hk-tasks'), _disk_file(lab, 'target', 'hk-tasks_replica')
        assert _read(source, 3 * MIB) != _read(replica_disk, 3 * MIB)
        assert _read(source, MIB) == _read(replica_disk, MIB)
    finally:
        undo = _play(setup, str(setup / 'undo.yml'))
        assert undo.returncode == 0, undo.stdout[-3000:]
