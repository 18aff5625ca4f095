# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/replicate.yml against the lab, as users run it: full, unchanged re-run, incremental, a VM that fails
while the others replicate, and the cycle snapshot removed in every case."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from integration_servers import playbook_env

pytestmark = pytest.mark.timeout(900)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VMS = ('pb01', 'pb02')


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """The lab inventory, with `replicated_vms` narrowed to this test's own VMs (plus one that does not exist)."""
    made = [lab.new_vm(name, disks_mib=(8, 4), cbt=False, seed=35, power_on=True) for name in VMS]
    out = tmp_path_factory.mktemp('pb-inventory')
    lab.inventory(out, VMS)
    yield out
    for vm in made:
        lab.destroy_vm(vm)


def _play(inventory, *extra):
    env = playbook_env(inventory)
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(inventory / 'inventory'),
           os.path.join(REPO, 'playbooks', 'replicate.yml')] + list(extra)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    with open(inventory / 'reports' / 'report.json') as f:
        report = json.load(f)
    return proc, dict((vm['vm'], vm) for vm in report['vms'])


def _sent(vm):
    return sum(d['bytes_sent'] for d in vm['disks'])


def test_full_unchanged_incremental_and_a_failing_vm(lab, inventory):
    proc, report = _play(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(report[name]['status'] == 'success' for name in VMS)
    assert all(d['plan'] == 'full' for name in VMS for d in report[name]['disks'])
    assert 'Replication run' in proc.stdout and '2 of 2 VMs replicated' in proc.stdout
    assert json.loads(subprocess.check_output([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare']
                                              + list(VMS)))['equal']

    proc, report = _play(inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(d['plan'] == 'cbt' for name in VMS for d in report[name]['disks'])
    assert sum(_sent(report[name]) for name in VMS) == 0

    written = lab.labctl('write', 'pb01', '--disk', 1, '--offset', 1 << 20, '--length', 30000, '--seed', 3)
    assert written['ranges']
    proc, report = _play(inventory, '-e', 'replicate_hosts=all_pb', '-i',
                         _ghost_inventory(inventory))
    assert proc.returncode != 0, 'a failed VM must fail the run'
    assert report['ghost01']['status'] == 'failed' and "VM 'ghost01' of datacenter 'SRC-DC' not found" in report['ghost01']['error']
    assert report['pb01']['status'] == report['pb02']['status'] == 'success'
    assert 0 < _sent(report['pb01']) <= 2 * 65536 and _sent(report['pb02']) == 0
    assert 'ghost01' in proc.stdout and 'FAILED' in proc.stdout
    assert json.loads(subprocess.check_output([sys.executable, lab.labctl_path, '--workdir', lab.workdir, 'compare']
                                              + list(VMS)))['equal']
    # the cycle snapshots are gone in every case
    si = lab.connect('source')
    for name in VMS:
        assert lab.find_vm(si, name).snapshot is None
    # every successful cycle is sealed on the replica: three restore points, the last cycle, no lock
    target = lab.connect('target')
    for name in VMS:
        extra = dict((o.key, o.value) for o in lab.find_vm(target, name + '_replica').config.extraConfig)
        points = json.loads(extra['replicator.points'])
        assert len(points) == 3 and points[-1]['consistency'] == 'crash'
        last = json.loads(extra['replicator.last_cycle'])
        assert last['status'] == 'success' and last['id'] == points[-1]['id']
        assert not extra.get('replicator.lock')
    for name in VMS:
        lab.labctl('checksum', name)  # the VMs are intact and readable


def _ghost_inventory(inventory):
    """A second inventory source: group all_pb = the test VMs + a VM that does not exist."""
    path = inventory / 'ghost.yml'
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts = dict((name, local) for name in VMS + ('ghost01',))
    path.write_text('---\n' + json.dumps({'all': {'children': {'all_pb': {'hosts': hosts}}}}))
    return str(path)
