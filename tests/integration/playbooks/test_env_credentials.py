# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks through ansible-runner (what AWX runs a job with) with the credentials only in the environment, as
docs/awx.md sets them up: VMWARE_HOST, VMWARE_USER, VMWARE_PASSWORD, VMWARE_VALIDATE_CERTS (AWX's VMware vCenter
credential) for the source and REPLICATOR_TARGET_HOST, REPLICATOR_TARGET_USER, REPLICATOR_TARGET_PASSWORD (the DR
site credential) for the target. The inventory holds no host name, user or password (only the lab's ports and CA
files). Replicate, test failover, undo, unplanned failover and undo with the DR site credential alone, planned
failover and failback each succeed, and the password is in no artifact of any run - only in the environment
ansible-runner records it was given (`command`)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sys

import pytest

from integration_servers import ansible_settings

ansible_runner = pytest.importorskip('ansible_runner')

pytestmark = pytest.mark.timeout(600)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VM = 'ec01'
REPLICA = VM + '_replica'
MIB = 1 << 20
CREDENTIAL_ENV = ('VMWARE_HOST', 'VMWARE_USER', 'VMWARE_PASSWORD', 'VMWARE_PORT', 'VMWARE_VALIDATE_CERTS',
                  'VMWARE_CA_PATH', 'REPLICATOR_TARGET_HOST', 'REPLICATOR_TARGET_USER', 'REPLICATOR_TARGET_PASSWORD')


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory with `replicated_vms` = this test's VM and every host name, user and password removed."""
    vm = lab.new_vm(VM, disks_mib=(8,), cbt=True, seed=30, power_on=True)
    out = tmp_path_factory.mktemp('env-credentials')
    lab.inventory(out, [VM])
    group_file = out / 'inventory' / 'group_vars' / 'all.yml'
    group = json.loads(group_file.read_text().split('\n', 1)[1])
    for site in ('lab_source', 'lab_target'):  # the lab's own copies of the connections
        del group[site]
    for conn in ('replicate_source', 'replicate_target'):
        group[conn] = dict((k, v) for k, v in group[conn].items() if k not in ('hostname', 'username', 'password'))
    group_file.write_text('---\n' + json.dumps(group))
    # the lab's NBD exporter for the failback (lab deltas are raw full images; see test_failback_role.py)
    exporter = {'failback_nbd_export_command': [sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'serve-nbd',
                                                '--socket', '{socket}', '--pidfile', '{pidfile}', '{path}'],
                'failback_work_dir': str(out / 'nbd')}
    (out / 'inventory' / 'group_vars' / 'replicated_vms.yml').write_text('---\n' + json.dumps(exporter))
    (out / 'runner').mkdir()  # ansible-runner's private data directory: artifacts/<run>/ of every run
    for path in (out / 'inventory').rglob('*.yml'):
        assert lab.state['sites']['source']['password'] not in path.read_text(), path
    yield out
    for site, name in (('source', VM), ('target', REPLICA)):
        try:
            lab.destroy_vm(lab.find_vm(lab.connect(site), name))
        except LookupError:
            pass


@pytest.fixture
def no_credentials_around(monkeypatch):
    """Nothing from the environment pytest runs in: the credentials are those each run is given."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)


def _credentials(lab, source=True, target=True):
    """The environment AWX's VMware vCenter credential and the DR site credential of docs/awx.md inject."""
    env = {}
    if source:
        s = lab.state['sites']['source']
        env.update(VMWARE_HOST=s['host'], VMWARE_USER=s['username'], VMWARE_PASSWORD=s['password'],
                   VMWARE_VALIDATE_CERTS='True')
    if target:
        t = lab.state['sites']['target']
        env.update(REPLICATOR_TARGET_HOST=t['host'], REPLICATOR_TARGET_USER=t['username'],
                   REPLICATOR_TARGET_PASSWORD=t['password'])
    return env


def _run(lab, inv, ident, playbook, credentials, **extravars):
    """Run a playbook of the collection with ansible-runner; (runner, text of every artifact but `command`)."""
    env = dict(credentials, **ansible_settings(inv))
    runner = ansible_runner.run(private_data_dir=str(inv / 'runner'), ident=ident,
                                playbook=os.path.join(REPO, 'playbooks', playbook),
                                inventory=str(inv / 'inventory'), envvars=env, extravars=extravars or None,
                                quiet=True, timeout=500)
    artifacts, texts = runner.config.artifact_dir, {}
    for root, _dirs, files in os.walk(artifacts):
        for name in files:
            path = os.path.join(root, name)
            with open(path, errors='replace') as f:
                texts[os.path.relpath(path, artifacts)] = f.read()
    with open(os.path.join(inv / 'last-run.log'), 'w') as f:  # to read after a failure
        f.write(texts.get('stdout', ''))
    # what ansible-runner records of the environment it was given (AWX keeps that redacted): the credentials were
    # really passed this way, and nowhere else
    command = json.loads(texts.pop('command'))
    for name, value in credentials.items():
        assert command['env'][name] == value
    passwords = set(v for k, v in credentials.items() if k.endswith('PASSWORD'))
    leaks = sorted(name for name, text in texts.items() if any(p in text for p in passwords))
    assert not leaks, 'the password is in the artifacts %s of %s' % (leaks, ident)
    assert 'job_events' in ' '.join(texts) and texts['stdout']
    return runner, texts['stdout']


def _succeeded(runner, stdout):
    assert runner.rc == 0 and runner.status == 'successful', stdout[-4000:]


def _failover_report(inv):
    with open(inv / 'fo-report' / 'failover-report.json') as f:
        return [vm for vm in json.load(f)['vms'] if vm['vm'] == VM][0]


def _replica(lab):
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
    vm = lab.find_vm(lab.connect('target'), REPLICA)
    return decode(vm.config.extraConfig).get('state') or 'ready', str(vm.runtime.powerState)


def _power(lab):
    return str(lab.find_vm(lab.connect('source'), VM).runtime.powerState)


def _sums(lab, name, site):
    return [d['sha256'] for d in lab.labctl('checksum', name, '--site', site)['disks']]


def test_a_missing_credential_is_named(lab, inventory, no_credentials_around):
    """Without VMWARE_PASSWORD (and so without a password the target could inherit) every role stops before any
    step and names what to set."""
    credentials = _credentials(lab)
    del credentials['VMWARE_PASSWORD'], credentials['REPLICATOR_TARGET_PASSWORD']
    for ident, playbook in (('missing-replicate', 'replicate.yml'), ('missing-failover', 'test_failover.yml'),
                            ('missing-failback', 'failback.yml')):
        runner, stdout = _run(lab, inventory, ident, playbook, credentials, failover_test_network='DR Network')
        assert runner.rc != 0, stdout[-3000:]
        assert 'The source connection lacks password (set replicate_source.password or the VMWARE_PASSWORD ' \
               'environment variable)' in ' '.join(stdout.split()), (playbook, stdout[-3000:])


def test_replicate_failover_and_failback_with_credentials_in_the_environment(lab, inventory, no_credentials_around):
    inv = inventory
    credentials = _credentials(lab)

    runner, stdout = _run(lab, inv, 'replicate', 'replicate.yml', credentials)
    _succeeded(runner, stdout)
    with open(inv / 'reports' / 'report.json') as f:
        report = [vm for vm in json.load(f)['vms'] if vm['vm'] == VM][0]
    assert report['status'] == 'success' and [d['plan'] for d in report['disks']] == ['full']
    assert _replica(lab) == ('ready', 'poweredOff')

    report_dir = str(inv / 'fo-report')
    runner, stdout = _run(lab, inv, 'test-failover', 'test_failover.yml', credentials,
                          failover_test_network='DR Network', failover_report_dir=report_dir)
    _succeeded(runner, stdout)
    assert _failover_report(inv)['state'] == 'test_failover'
    assert _replica(lab) == ('test_failover', 'poweredOn') and _power(lab) == 'poweredOn'

    runner, stdout = _run(lab, inv, 'undo', 'failover.yml', credentials, failover_action='undo',
                          failover_report_dir=report_dir)
    _succeeded(runner, stdout)
    assert _failover_report(inv)['state'] == 'ready' and _replica(lab) == ('ready', 'poweredOff')

    # the source site down: no source credential at all, the DR site credential is enough
    target_only = _credentials(lab, source=False)
    runner, stdout = _run(lab, inv, 'unplanned', 'failover.yml', target_only, failover_action='unplanned',
                          failover_report_dir=report_dir)
    _succeeded(runner, stdout)
    assert _failover_report(inv)['state'] == 'failed_over' and _replica(lab) == ('failed_over', 'poweredOn')
    runner, stdout = _run(lab, inv, 'unplanned-undo', 'failover.yml', target_only, failover_action='undo',
                          failover_source_available=False, failover_report_dir=report_dir)
    _succeeded(runner, stdout)
    assert _replica(lab) == ('ready', 'poweredOff')

    # planned: two more cycles through the replicate role inside the failover role, the source shut down
    runner, stdout = _run(lab, inv, 'planned', 'failover.yml', credentials, failover_action='planned',
                          failover_report_dir=report_dir)
    _succeeded(runner, stdout)
    record = _failover_report(inv)
    assert record['state'] == 'failed_over' and record['restore_point'].endswith('-final')
    assert _replica(lab) == ('failed_over', 'poweredOn') and _power(lab) == 'poweredOff'

    lab.labctl('write', REPLICA, '--site', 'target', '--disk', 0, '--offset', MIB, '--length', 65536, '--seed', 61)
    held = _sums(lab, REPLICA, 'target')
    runner, stdout = _run(lab, inv, 'failback', 'failback.yml', credentials)
    _succeeded(runner, stdout)
    assert _sums(lab, VM, 'source') == held, "the original does not hold the replica's bytes"
    assert _power(lab) == 'poweredOn' and _replica(lab) == ('ready', 'poweredOff')
