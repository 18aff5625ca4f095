# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/failback.yml against the lab, as users run it: replicate, fail over, write in the running replica, fail
back into the original VM, then prove the bytes, what travelled, the power states, the digest-compared next cycle and
that an older restore point still rolls back exactly."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(1200)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VM = 'fb01'
REPLICA = VM + '_replica'
MIB = 1 << 20


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory with `replicated_vms` = this test's VM, and the lab's NBD exporter for the failback (lab
    deltas are raw full images that labctl serve-nbd exports; a real host uses the role's qemu-nbd default)."""
    vm = lab.new_vm(VM, disks_mib=(8, 4), cbt=True, seed=35, power_on=True)
    out = tmp_path_factory.mktemp('fb-inventory')
    lab.labctl('inventory', '--output', out / 'inventory')
    hosts_file = out / 'inventory' / 'hosts.yml'
    hosts = json.loads(hosts_file.read_text().split('\n', 1)[1])
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts['all']['children']['replicated_vms']['hosts'] = {VM: local}
    hosts['all']['children']['fb_old'] = {'hosts': {'fb02': local}}  # test_failback_to_a_new_vm
    hosts['all']['children']['fb_new'] = {'hosts': {'fb02_new': local}}
    hosts['all']['children']['fb_hot'] = {'hosts': {'fb03': local}}  # test_failback_over_hotadd
    hosts_file.write_text('---\n' + json.dumps(hosts))
    exporter = {'failback_nbd_export_command': [sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'serve-nbd',
                                                '--socket', '{socket}', '--pidfile', '{pidfile}', '{path}'],
                'failback_work_dir': str(out / 'nbd')}
    for group in ('replicated_vms', 'fb_old'):
        (out / 'inventory' / 'group_vars' / ('%s.yml' % group)).write_text('---\n' + json.dumps(exporter))
    yield out, vm
    lab.destroy_vm(vm)
    replica = _vm(lab, 'target', REPLICA)
    if replica is not None:
        lab.destroy_vm(replica)


def _vm(lab, site, name):
    try:
        return lab.find_vm(lab.connect(site), name)
    except LookupError:
        return None


def _play(inventory, playbook, *extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=str(inventory / 'home'),
               ANSIBLE_LOCAL_TEMP=str(inventory / 'tmp'))
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.dirname(os.path.dirname(os.path.dirname(REPO))) \
        if REPO.endswith(os.path.join('ansible_collections', 'replicator', 'vsphere')) \
        else os.path.join(REPO, '.build', 'acroot')
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory / 'inventory'),
           os.path.join(REPO, 'playbooks', playbook)] + list(extra)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def _replicate(inventory, run_id):
    _play(inventory, 'replicate.yml', '-e', 'replicate_run_id=%s' % run_id)
    with open(inventory / 'reports' / 'report.json') as f:
        return [vm for vm in json.load(f)['vms'] if vm['vm'] == VM][0]


def _sums(lab, name, site):
    return [d['sha256'] for d in lab.labctl('checksum', name, '--site', site)['disks']]


def _keys(vm):
    return sorted(o.key for o in vm.config.extraConfig or [] if o.key.startswith('replicator.'))


def test_failback_into_the_original(lab, inventory):
    from pyVmomi import vim
    inv, vm = inventory
    first = _replicate(inv, 'fbc1')
    assert [d['plan'] for d in first['disks']] == ['full', 'full']
    at_first = _sums(lab, REPLICA, 'target')
    lab.labctl('write', VM, '--disk', 0, '--offset', 5 * MIB, '--length', 40000, '--seed', 4)
    second = _replicate(inv, 'fbc2')
    assert [d['plan'] for d in second['disks']] == ['cbt', 'cbt']
    at_second = _sums(lab, REPLICA, 'target')

    # planned failover: production goes down, the replica takes over and the guest writes there
    lab.wait(vm.PowerOffVM_Task())
    _play(inv, 'failover.yml', '-e', 'failover_state=failed_over')
    replica = _vm(lab, 'target', REPLICA)
    assert replica.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
    written = [lab.labctl('write', REPLICA, '--site', 'target', '--disk', 0, '--offset', 2 * MIB, '--length', 3 * 65536,
                          '--seed', 21),
               lab.labctl('write', REPLICA, '--site', 'target', '--disk', 1, '--offset', MIB + 4096, '--length', 8192,
                          '--seed', 22)]
    held = _sums(lab, REPLICA, 'target')
    assert held != _sums(lab, VM, 'source')

    out = _play(inv, 'failback.yml')
    report = re.search(r'copies: running (\d+) bytes sent \((\w+)\); final (\d+) bytes sent \((\w+)\)', out)
    assert report, out[-3000:]
    running, running_plan, final, final_plan = int(report.group(1)), report.group(2), int(report.group(3)), report.group(4)
    sent = running + final
    print('failback: guest wrote %d bytes in the replica; %d bytes sent while it ran (%s), %d after shutdown (%s), '
          'disks %d bytes' % (sum(w['bytes'] for w in written), running, running_plan, final, final_plan, 12 * MIB))
    assert running_plan == 'seeded' and final_plan == 'digests'
    # only the two 1 MiB blocks the replica's guest wrote travel, never the 12 MiB of disks
    assert sum(w['bytes'] for w in written) <= sent <= 2 * MIB + 65536
    assert _sums(lab, VM, 'source') == held, "the original does not hold the replica's bytes"

    vm = _vm(lab, 'source', VM)
    replica = _vm(lab, 'target', REPLICA)
    assert vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
    assert replica.runtime.powerState == vim.VirtualMachinePowerState.poweredOff
    assert _keys(vm) == [], 'the original still carries replication metadata'
    state = dict((o.key, o.value) for o in replica.config.extraConfig)
    assert state['replicator.state'] == 'ready' and 'replicator.failover' not in state
    assert all(json.loads(state[k])['change_id'] is None for k in state if k.startswith('replicator.disk.'))
    assert replica.snapshot is None
    assert _sums(lab, REPLICA, 'target') == at_second, 'the replica is not back at its newest restore point'
    src_dir = lab.state['sites']['source']['datastores']['src-ds1']
    assert not [n for n in os.listdir(os.path.join(src_dir, VM)) if n.endswith('.replicator')]

    # replication resumes: digests, not CBT (the failback wrote the original outside CBT), only the differences
    third = _replicate(inv, 'fbc3')
    assert [d['plan'] for d in third['disks']] == ['digests', 'digests'], third
    assert 0 < sum(int(d['bytes_sent']) for d in third['disks']) <= 2 * MIB + 65536
    assert json.loads(subprocess.check_output([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare',
                                               VM]))['equal']
    fourth = _replicate(inv, 'fbc4')
    assert [d['plan'] for d in fourth['disks']] == ['cbt', 'cbt'] and sum(int(d['bytes_sent']) for d in fourth['disks']) == 0

    # an older restore point still rolls back exactly
    _play(inv, 'failover.yml', '-e', 'failover_state=test', '-e', 'failover_restore_point=fbc1',
          '-e', 'failover_test_network=DR Network')
    assert _sums(lab, REPLICA, 'target') == at_first
    _play(inv, 'failover.yml', '-e', 'failover_state=undone')
    assert json.loads(subprocess.check_output([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare',
                                               VM]))['equal']


def test_failback_to_a_new_vm(lab, inventory):
    """failback_mode=new_vm: the replica is copied into a new production VM, which it then follows (restore points
    kept in its stores); the new VM's first cycle compares digests."""
    from pyVmomi import vim
    inv, _vm_fb01 = inventory
    name, new = 'fb02', 'fb02_new'
    vm = lab.new_vm(name, disks_mib=(6,), cbt=True, seed=30, power_on=True)
    created = None
    try:
        _play(inv, 'replicate.yml', '-e', 'replicate_run_id=fbn1', '-e', 'replicate_hosts=fb_old')
        lab.wait(vm.PowerOffVM_Task())
        _play(inv, 'failover.yml', '-e', 'failover_state=failed_over', '-e', 'replicate_hosts=fb_old')
        lab.labctl('write', name + '_replica', '--site', 'target', '--offset', MIB, '--length', 65536, '--seed', 41)
        held = _sums(lab, name + '_replica', 'target')
        _play(inv, 'failback.yml', '-e', 'replicate_hosts=fb_old', '-e', 'failback_mode=new_vm',
              '-e', 'failback_new_vm_name=%s' % new, '-e', 'failback_new_vm_host=src-esx01',
              '-e', 'failback_new_vm_datastore=src-ds1', '-e', 'failback_sync_while_running=false')
        created = _vm(lab, 'source', new)
        assert created is not None and created.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
        assert _keys(created) == []
        assert _sums(lab, new, 'source') == held
        replica = _vm(lab, 'target', name + '_replica')
        state = dict((o.key, o.value) for o in replica.config.extraConfig)
        assert json.loads(state['replicator.source'])['instance_uuid'] == created.config.instanceUuid
        assert state['replicator.state'] == 'ready' and replica.runtime.powerState == 'poweredOff'
        out = _play(inv, 'replicate.yml', '-e', 'replicate_hosts=fb_new', '-e', 'replicate_run_id=fbn2')
        with open(inv / 'reports' / 'report.json') as f:
            report = [v for v in json.load(f)['vms'] if v['vm'] == new][0]
        assert [d['plan'] for d in report['disks']] == ['digests'], out[-3000:]
        assert 0 < sum(int(d['bytes_sent']) for d in report['disks']) <= MIB + 65536
        assert _sums(lab, new, 'source') == _sums(lab, name + '_replica', 'target')
    finally:
        for site, vm_name in (('source', new), ('source', name), ('target', name + '_replica')):
            found = _vm(lab, site, vm_name)
            if found is not None:
                lab.destroy_vm(found)


def _flat_placeholders(lab, replica_name):
    """Lab limitation, not a product step: govmomi's simulator accepts an existing disk in ReconfigVM only when a
    `<name>-flat.vmdk` lies beside its descriptor, and lab deltas keep their (full-copy) extent in `-delta.vmdk`. A
    failed-over replica runs on such a delta, which the failback hot-adds, so an empty placeholder is put beside each
    (labd reads the extent its descriptor names, never the placeholder). ESXi has no such check."""
    site = lab.state['sites']['target']
    made = []
    for disk in lab.disks(_vm(lab, 'target', replica_name)):
        store, rel = re.match(r'^\[([^\]]+)\]\s*(.*)$', disk.backing.fileName).groups()
        path = os.path.join(site['datastores'][store], rel)[:-len('.vmdk')] + '-flat.vmdk'
        if not os.path.exists(path):
            open(path, 'wb').close()
            made.append(path)
    return made


def test_failback_over_hotadd(lab, inventory, tmp_path):
    """failback_transport=hotadd: the replica's snapshot disks are hot-added to a DR proxy VM and the original's disks
    to a production proxy VM (no exporter, nothing mounted on the proxy for the copy; the production datastore left
    unmapped so the copy's stores go to failback_target_state_dir). The original holds the replica's bytes, only the
    blocks the guest wrote travel, and nothing stays attached to any proxy nor any store in the state directory."""
    from pyVmomi import vim
    inv, _vm_fb01 = inventory
    name = 'fb03'
    dr_proxy, prod_proxy = 'fb-hot-pdr', 'fb-hot-psrc'
    vm = lab.new_vm(name, disks_mib=(8, 4), cbt=True, seed=36, power_on=True)
    lab.labctl('proxy', dr_proxy, '--site', 'target')
    lab.labctl('proxy', prod_proxy, '--site', 'source')
    state_dir = tmp_path / 'failback-state'
    state_dir.mkdir()
    sites = lab.state['sites']
    hotadd = {'failback_transport': 'hotadd',
              'failback_dr_proxy_pool': [dr_proxy], 'failback_device_dir': sites['target']['device_dir'],
              'failback_production_proxy_pool': [prod_proxy],
              'failback_production_device_dir': sites['source']['device_dir'],
              'failback_production_datastore_paths': {}, 'failback_target_state_dir': str(state_dir),
              # an NBD export would fail: the copy must not need one
              'failback_nbd_export_command': ['false'], 'failback_work_dir': str(tmp_path / 'no-nbd')}
    try:
        _play(inv, 'replicate.yml', '-e', 'replicate_run_id=fbh1', '-e', 'replicate_hosts=fb_hot')
        lab.wait(vm.PowerOffVM_Task())
        _play(inv, 'failover.yml', '-e', 'failover_state=failed_over', '-e', 'replicate_hosts=fb_hot')
        written = [lab.labctl('write', name + '_replica', '--site', 'target', '--disk', 0, '--offset', 3 * MIB,
                              '--length', 100000, '--seed', 51),
                   lab.labctl('write', name + '_replica', '--site', 'target', '--disk', 1, '--offset', 2 * MIB,
                              '--length', 4096, '--seed', 52)]
        held = _sums(lab, name + '_replica', 'target')
        assert held != _sums(lab, name, 'source')
        placeholders = _flat_placeholders(lab, name + '_replica')

        out = _play(inv, 'failback.yml', '-e', 'replicate_hosts=fb_hot', '-e', json.dumps(hotadd))
        for path in placeholders:
            os.remove(path)
        report = re.search(r'copies: running (\d+) bytes sent \((\w+)\); final (\d+) bytes sent \((\w+)\)', out)
        assert report, out[-3000:]
        running, final = int(report.group(1)), int(report.group(3))
        assert (report.group(2), report.group(4)) == ('seeded', 'digests'), out[-3000:]
        print('failback over hot-add: guest wrote %d bytes in the replica; %d bytes sent while it ran, %d after '
              'shutdown, disks %d bytes' % (sum(w['bytes'] for w in written), running, final, 12 * MIB))
        # only the 1 MiB blocks the replica's guest wrote travel (one per disk), never the 12 MiB
        assert sum(w["bytes"] for w in written) <= running + final <= 2 * MIB + 65536
        assert _sums(lab, name, 'source') == held, "the original does not hold the replica's bytes"
        assert not os.path.exists(hotadd['failback_work_dir']), 'the NBD path ran'

        # nothing left attached: no device published, no disk on either proxy, no marker of ours
        for site, proxy in (('source', prod_proxy), ('target', dr_proxy)):
            device_dir = sites[site]['device_dir']
            assert not os.path.isdir(device_dir) or os.listdir(device_dir) == [], os.listdir(device_dir)
            found = _vm(lab, site, proxy)
            assert lab.disks(found) == [], '%s still has disks' % proxy
            assert _keys(found) == [], '%s still carries hot-add markers' % proxy
        # the copy's stores were in the state directory and are gone, none beside the original's disks
        assert os.listdir(str(state_dir)) == []
        src_dir = sites['source']['datastores']['src-ds1']
        assert not [n for n in os.listdir(os.path.join(src_dir, name)) if n.endswith('.replicator')]

        vm = _vm(lab, 'source', name)
        replica = _vm(lab, 'target', name + '_replica')
        assert vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn and _keys(vm) == []
        assert replica.runtime.powerState == vim.VirtualMachinePowerState.poweredOff
        state = dict((o.key, o.value) for o in replica.config.extraConfig)
        assert state['replicator.state'] == 'ready' and 'replicator.failover' not in state
    finally:
        for site, vm_name in (('source', name), ('target', name + '_replica'), ('source', prod_proxy),
                              ('target', dr_proxy)):
            found = _vm(lab, site, vm_name)
            if found is not None:
                lab.destroy_vm(found)
