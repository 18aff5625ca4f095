# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_replicate's options as role variables, set per VM in the inventory's host_vars: playbooks/replicate.yml on
the lab with replicate_block_size, replicate_exclude_disks and then replicate_plan, checked on the bytes (labctl), the
replica store and the run report; an exclude that names no disk of the VM fails its cycle and says why."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import subprocess
import sys

import pytest

from integration_servers import playbook_env

pytestmark = pytest.mark.timeout(300)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VM = 'opt01'
DISKS_MIB = (8, 4)
BLOCK = 262144


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory with `replicated_vms` narrowed to this test's VM (two disks, CBT on, running)."""
    made = lab.new_vm(VM, disks_mib=DISKS_MIB, cbt=True, seed=35, power_on=True)
    out = tmp_path_factory.mktemp('options-inventory')
    lab.inventory(out, [VM])
    (out / 'inventory' / 'host_vars').mkdir()
    yield out
    lab.destroy_vm(made)


def _host_vars(inventory, **values):
    """The VM's own settings, as a user writes them: inventory/host_vars/<vm>.yml."""
    (inventory / 'inventory' / 'host_vars' / (VM + '.yml')).write_text('---\n' + json.dumps(values) + '\n')


def _play(inventory, *extra):
    env = playbook_env(inventory)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory / 'inventory'),
           os.path.join(REPO, 'playbooks', 'replicate.yml')] + list(extra)
    report_file = inventory / 'reports' / 'report.json'
    if report_file.exists():
        report_file.unlink()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert report_file.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    with open(report_file) as f:
        report = json.load(f)
    return proc, dict((vm['vm'], vm) for vm in report['vms'])[VM]


def _checksums(lab, vm, site):
    return dict((d['key'], d) for d in lab.labctl('checksum', vm, '--site', site)['disks'])


def _store(disk):
    """The replica store of a replica disk: beside its descriptor, <disk>.vmdk.replicator."""
    assert disk['data'].endswith('-flat.vmdk'), disk
    return disk['data'][:-len('-flat.vmdk')] + '.vmdk.replicator'


def _zeros_sha256(size):
    digest = hashlib.sha256()
    chunk = bytes(1 << 20)
    for _block in range(size >> 20):
        digest.update(chunk)
    return digest.hexdigest()


def _points(lab):
    extra = dict((o.key, o.value) for o in lab.find_vm(lab.connect('target'), VM + '_replica').config.extraConfig)
    return json.loads(extra.get('replicator.points') or '[]')


def test_block_size_exclude_and_plan_per_vm_in_host_vars(lab, inventory):
    # cycle 1: the second disk excluded by its label (the lab's labels: disk-<controller>-<unit>), the first disk
    # copied in 256 KiB blocks
    _host_vars(inventory, replicate_block_size=BLOCK, replicate_exclude_disks=['disk-1000-1'])
    proc, vm = _play(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert vm['status'] == 'success', vm
    assert [(d['key'], d['plan']) for d in vm['disks']] == [(2000, 'full')]  # the excluded disk is no copy at all
    assert '1 of 1 VMs replicated' in proc.stdout and 'FAILED' not in proc.stdout
    source, replica = _checksums(lab, VM, 'source'), _checksums(lab, VM + '_replica', 'target')
    assert replica[2000]['sha256'] == source[2000]['sha256']
    assert replica[2001]['sha256'] == _zeros_sha256(DISKS_MIB[1] << 20) != source[2001]['sha256']
    # the replica store of the copied disk holds its digests at the block size the role passed
    with open(_store(replica[2000]) + '/manifest.json') as f:
        assert json.load(f)['block_size'] == BLOCK
    assert not os.path.exists(_store(replica[2001]))  # never a cycle on the excluded disk

    # cycle 2: guest writes on both disks; the plan forced to digests, also from host_vars; the excluded disk by key
    lab.labctl('write', VM, '--disk', 0, '--offset', 1 << 20, '--length', 30000, '--seed', 7)
    lab.labctl('write', VM, '--disk', 1, '--offset', 0, '--length', 30000, '--seed', 8)
    _host_vars(inventory, replicate_block_size=BLOCK, replicate_exclude_disks=[2001], replicate_plan='digests')
    proc, vm = _play(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [(d['key'], d['plan'], d['reason']) for d in vm['disks']] == [(2000, 'digests', 'digest comparison requested')]
    # 30000 bytes at an aligned offset: exactly one 256 KiB block differs and travels (1 MiB at the module's default)
    assert int(vm['disks'][0]['bytes_changed']) == int(vm['disks'][0]['bytes_data']) == BLOCK, vm['disks']
    source, replica_now = _checksums(lab, VM, 'source'), _checksums(lab, VM + '_replica', 'target')
    assert replica_now[2000]['sha256'] == source[2000]['sha256']
    assert replica_now[2001]['sha256'] == replica[2001]['sha256'] != source[2001]['sha256']  # left alone
    points = _points(lab)
    assert len(points) == 2 and points[-1]['id'] == vm['restore_point']  # both cycles sealed on the replica

    # an exclude that names no disk of the VM fails its cycle before anything is copied, naming the VM's disks
    before = _points(lab)
    proc, vm = _play(inventory, '-e', json.dumps({'replicate_exclude_disks': ['Hard disk 9', 2000]}))
    assert proc.returncode != 0
    assert vm['status'] == 'failed'
    assert ('replicate_exclude_disks of VM opt01 names "Hard disk 9", which is no disk of the VM; its disks '
            '(key: label): 2000: disk-1000-0, 2001: disk-1000-1') in vm['error'], vm['error']
    assert _points(lab) == before
    assert lab.find_vm(lab.connect('source'), VM).snapshot is None  # the cycle snapshot was removed
