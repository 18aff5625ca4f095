# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_replicate's per-proxy copy slots against the lab: with every slot held by another process the copy waits,
then fails clearly naming the holder and commits nothing; once the slot is free the same copy runs in it."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(600)

VM = 'slot01'
HOLDER = textwrap.dedent('''
    import sys
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.proxy_slots import ProxySlots
    with ProxySlots(sys.argv[1], 1, timeout=30, owner='vm-other disk 2000') as slot:
        print(slot.index, flush=True)
        sys.stdin.read()
''')


@pytest.fixture(scope='module')
def setup(lab, conn, run):
    vm = lab.new_vm(VM, disks_mib=(4,), cbt=True, seed=52)
    register = dict(conn, name=VM, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1',
                    replica_name='slot-{name}')
    created = run('replica_register', register)
    assert created['changed'] and not created.get('failed'), created.output
    yield vm
    run('replica_register', dict(register, state='absent'))
    lab.destroy_vm(vm)


def test_a_copy_waits_for_a_free_slot_and_fails_clearly_when_none_frees(lab, conn, run, setup, tmp_path):
    slots = str(tmp_path / 'slots')
    snap = lab.wait(setup.CreateSnapshot_Task('cycle', '', False, False))
    args = dict(conn, name=VM, snapshot=snap._moId, disk_key=2000, proxy_slots=1, proxy_slots_dir=slots,
                slot_timeout=2, source_datastore_paths=lab.state['sites']['source']['datastores'],
                target_datastore_paths=lab.state['sites']['target']['datastores'], cycle_id='s1')
    roots = [p for p in sys.path if os.path.isdir(os.path.join(p, 'ansible_collections'))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(roots))
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, slots], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == '0'
        busy = run('disk_replicate', args, site='source')
        assert busy.failed and 'All 1 disk copy slots of this proxy stayed busy' in busy['msg'], busy.output
        assert 'vm-other disk 2000' in busy['msg'] and busy.get('fault') == 'SlotTimeout'
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    lab.labctl('checksum', 'slot-' + VM, '--site', 'target')
    done = run('disk_replicate', args, site='source')
    assert not done.failed, done.output
    assert done['slot']['index'] == 0 and done['plan']['kind'] == 'full'
    source = lab.labctl('checksum', VM, '--snapshot', 'cycle')['disks'][0]['sha256']
    replica = lab.labctl('checksum', 'slot-' + VM, '--site', 'target')['disks'][0]['sha256']
    assert source == replica
    lab.wait(snap.RemoveSnapshot_Task(False))
