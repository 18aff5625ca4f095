# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_replicate against the lab, run for real through ansible-playbook: full then CBT incremental, byte-exact
against the source snapshot, check mode, CBT reset fallback, bad input."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from integration_servers import free_port

pytestmark = pytest.mark.timeout(600)

MIB = 1 << 20
VM = 'drep01'


def _snapshot(lab, vm, name):
    return lab.wait(vm.CreateSnapshot_Task(name, 'replication cycle', False, False))


@pytest.fixture(scope='module')
def setup(lab, conn, run):
    """A source VM with CBT and guest data, and its replica on the DR host (the 'drep-' prefix)."""
    vm = lab.new_vm(VM, disks_mib=(8, 5), cbt=True, seed=40)
    register = dict(conn, name=VM, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1',
                    replica_name='drep-{name}')
    created = run('replica_register', register)
    assert created['changed'] and not created.get('failed'), created.output
    yield vm
    run('replica_register', dict(register, state='absent'))
    lab.destroy_vm(vm)


def _args(lab, conn, snapshot, key, **extra):
    args = dict(conn, name=VM, snapshot=snapshot, disk_key=key,
                source_datastore_paths=lab.state['sites']['source']['datastores'],
                target_datastore_paths=lab.state['sites']['target']['datastores'], retention=3)
    args.update(extra)
    return args


def _checksums(lab, disk, snapshot):
    source = lab.labctl('checksum', VM, '--disk', disk, '--snapshot', snapshot)
    replica = lab.labctl('checksum', 'drep-' + VM, '--disk', disk, '--site', 'target')
    return source['disks'][0]['sha256'], replica['disks'][0]['sha256']


def test_full_then_incremental_is_byte_exact(lab, conn, run, setup):
    vm = setup
    snap1 = _snapshot(lab, vm, 'cycle-1')
    for index, key in enumerate((2000, 2001)):
        checked = run('disk_replicate', _args(lab, conn, snap1._moId, key), check=True)
        assert checked['plan']['kind'] == 'full' and checked['changed'], checked.output
        assert checked['restore_point'] is None
        full = run('disk_replicate', _args(lab, conn, snap1._moId, key, cycle_id='c1'), site='source')
        assert full['changed'] and full['plan']['kind'] == 'full', full.output
        assert 'first cycle' in full['plan']['reason']
        assert full['restore_point']['id'] == 'c1'
        assert full['stats']['bytes_written'] > 0
        source, replica = _checksums(lab, index, 'cycle-1')
        assert source == replica
        print('disk %d full: SOAP calls on the source %s' % (key, full['soap']))
    first_change_id = full['committed_change_id']
    assert first_change_id and first_change_id == full['disk']['change_id']
    lab.wait(snap1.RemoveSnapshot_Task(False))

    written = lab.labctl('write', VM, '--disk', 1, '--offset', 3 * MIB + 4096, '--length', 20000, '--seed', 7)
    changed_bytes = sum(length for _start, length in written['ranges'])
    snap2 = _snapshot(lab, vm, 'cycle-2')
    unchanged = run('disk_replicate', _args(lab, conn, snap2._moId, 2000, cycle_id='c2'), site='source')
    assert unchanged['plan']['kind'] == 'cbt' and not unchanged['changed'], unchanged.output
    assert unchanged['plan']['changed_areas'] == 0 and unchanged['stats']['bytes_sent'] == 0
    incremental = run('disk_replicate', _args(lab, conn, snap2._moId, 2001, cycle_id='c2'), site='source')
    assert incremental['plan']['kind'] == 'cbt' and incremental['changed'], incremental.output
    assert incremental['plan']['previous_change_id'] == first_change_id
    # only what the guest wrote travels (CBT granularity 64 KiB in the lab, sent as 4 KiB-aligned pieces)
    assert changed_bytes <= incremental['stats']['bytes_planned'] <= 2 * 65536
    assert incremental['stats']['bytes_written'] <= 2 * 65536
    source, replica = _checksums(lab, 1, 'cycle-2')
    assert source == replica
    print('incremental: %d bytes changed by the guest, %d planned, %d written, SOAP calls %s' % (
        changed_bytes, incremental['stats']['bytes_planned'], incremental['stats']['bytes_written'],
        incremental['soap']))
    lab.wait(snap2.RemoveSnapshot_Task(False))


def test_cbt_reset_falls_back_to_digests(lab, conn, run, setup):
    vm = setup
    lab.labctl('reset-cbt', VM)
    lab.labctl('write', VM, '--disk', 0, '--offset', MIB, '--length', 4096, '--seed', 9)
    snap = _snapshot(lab, vm, 'cycle-reset')
    try:
        result = run('disk_replicate', _args(lab, conn, snap._moId, 2000, cycle_id='c3'), site='source')
        assert result['plan']['kind'] == 'digests', result.output
        assert 'reset' in result['plan']['reason']
        assert result['changed'] and result['stats']['bytes_data'] <= MIB
        source, replica = _checksums(lab, 0, 'cycle-reset')
        assert source == replica
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))


def test_bad_input_is_clear(lab, conn, run, setup):
    vm = setup
    snap = _snapshot(lab, vm, 'cycle-bad')
    try:
        unmapped = run('disk_replicate', _args(lab, conn, snap._moId, 2000, source_datastore_paths={}),
                       site='source')
        assert unmapped['failed'] and "datastore 'src-ds1'" in unmapped['msg'], unmapped.output
        assert unmapped['fault'] == 'DatastorePathError'
        no_disk = run('disk_replicate', _args(lab, conn, snap._moId, 2077), site='source')
        assert no_disk['failed'] and 'no disk with key 2077' in no_disk['msg']
        no_snap = run('disk_replicate', _args(lab, conn, 'no-such-snapshot', 2000), site='source')
        assert no_snap['failed'] and "Snapshot 'no-such-snapshot' not found" in no_snap['msg']
        bad_block = run('disk_replicate', _args(lab, conn, snap._moId, 2000, block_size=1000), site='source')
        assert bad_block['failed'] and 'power of two' in bad_block['msg']
        unknown = run('disk_replicate', dict(_args(lab, conn, snap._moId, 2000), name='no-such-vm'), site='source')
        assert unknown['failed'] and "VM 'no-such-vm' not found" in unknown['msg']
        bad_password = run('disk_replicate', dict(_args(lab, conn, snap._moId, 2000), password='wrong'),
                           site='source')
        assert bad_password['failed'] and bad_password['fault'] == 'InvalidLogin'
        assert 'wrong' not in bad_password['msg'] and conn['password'] not in bad_password.output
        down = free_port()
        unreachable = run('disk_replicate', dict(_args(lab, conn, snap._moId, 2000),
                                                 target=dict(conn['target'], port=down), timeout=5), site='source')
        assert unreachable['failed'] and 'Cannot reach' in unreachable['msg'] and str(down) in unreachable['msg']
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))
