# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replica_failover against the lab, through ansible-playbook: a VM with two disks replicated three cycles, then
test failover, undo, failover to an older point with guest writes, undo back to the newest bytes, unplanned
failover by replica name, commit; check mode, idempotent re-runs and refusals."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import time

import pytest

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import (
    add_nic, extra_config, target_args, vm_named,
)

pytestmark = pytest.mark.timeout(600)

MIB = 1 << 20
VM = 'fover01'
REPLICA = 'fo-' + VM
CYCLES = ('c1', 'c2', 'c3')


def _replicate_cycle(lab, conn, run, vm, cycle, register):
    snap = lab.wait(vm.CreateSnapshot_Task('cycle-' + cycle, 'replication cycle', False, False))
    try:
        for key in (2000, 2001):
            done = run('disk_replicate', dict(conn, name=VM, snapshot=snap._moId, disk_key=key, cycle_id=cycle,
                                              source_datastore_paths=lab.state['sites']['source']['datastores'],
                                              target_datastore_paths=lab.state['sites']['target']['datastores']))
            assert not done.failed and done['restore_point']['id'] == cycle, done.output
        sums = [lab.labctl('checksum', VM, '--disk', disk, '--snapshot', 'cycle-' + cycle)['disks'][0]['sha256']
                for disk in (0, 1)]
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))
    # every disk committed the cycle: seal it on the replica (as the replicate role does); a failover accepts only
    # sealed points
    seal = {'id': cycle, 'status': 'success', 'finished': int(time.time())}
    sealed = run('replica_register', dict(register, cycle=seal))
    assert not sealed.failed and cycle in [p['id'] for p in sealed['replica']['points']], sealed.output
    return sums


@pytest.fixture(scope='module')
def replicated(lab, conn, run):
    """{cycle: [disk 0 sha256, disk 1 sha256]} of the source snapshots of three cycles replicated into REPLICA."""
    vm = lab.new_vm(VM, disks_mib=(6, 4), cbt=True, seed=30)
    add_nic(lab, vm)
    register = dict(conn, name=VM, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1',
                    replica_name='fo-{name}', network_map={'VM Network': 'VM Network'})
    created = run('replica_register', register)
    assert created['changed'] and not created.failed, created.output
    sums = {}
    try:
        for index, cycle in enumerate(CYCLES):
            if index:
                lab.labctl('write', VM, '--disk', 0, '--offset', index * MIB, '--length', 70000, '--seed', 10 + index)
                lab.labctl('write', VM, '--disk', 1, '--offset', 2 * MIB + index * 4096, '--length', 8192,
                           '--seed', 20 + index)
            sums[cycle] = _replicate_cycle(lab, conn, run, vm, cycle, register)
        assert len(set(tuple(s) for s in sums.values())) == 3
        yield vm, sums
    finally:
        run('replica_register', dict(register, state='absent'))
        lab.destroy_vm(vm)


def _args(lab, conn, state, **extra):
    args = dict(conn, name=VM, state=state, target_datastore_paths=lab.state['sites']['target']['datastores'])
    args.update(extra)
    return args


def _replica_sums(lab):
    return [lab.labctl('checksum', REPLICA, '--disk', disk, '--site', 'target')['disks'][0]['sha256']
            for disk in (0, 1)]


def _replica(target_si):
    vm = vm_named(target_si, REPLICA)
    state = extra_config(vm).get('replicator.state')
    nic = [d for d in vm.config.hardware.device if hasattr(d, 'macAddress')][0]
    snaps = [t.name for t in (vm.snapshot.rootSnapshotList if vm.snapshot else [])]
    return {'state': state, 'power': str(vm.runtime.powerState), 'network': nic.backing.deviceName,
            'start_connected': nic.connectable.startConnected, 'snapshots': snaps,
            'failover': json.loads(extra_config(vm).get('replicator.failover') or 'null')}


def test_test_failover_then_undo(lab, conn, run, replicated, target_si):
    vm, sums = replicated
    assert _replica_sums(lab) == sums['c3']
    checked = run('replica_failover', _args(lab, conn, 'test', test_network='DR Network'), check=True, diff=True)
    assert checked['changed'] and not checked.failed, checked.output
    assert any('power on' in a for a in checked['actions']) and checked['restore_point']['id'] == 'c3'
    assert checked['diff']['after']['state'] == 'test_failover'
    assert _replica(target_si)['state'] == 'ready' and _replica(target_si)['power'] == 'poweredOff'

    tested = run('replica_failover', _args(lab, conn, 'test', test_network='DR Network'), diff=True)
    assert tested['changed'] and not tested.failed, tested.output
    print('test failover: actions %s, SOAP calls on the target %s' % (tested['actions'], tested['soap']))
    now = _replica(target_si)
    assert now['state'] == 'test_failover' and now['power'] == 'poweredOn'
    assert now['network'] == 'DR Network' and now['start_connected']
    assert now['snapshots'] == ['replicator-failover'] and now['failover']['point'] == 'c3'
    assert tested['replica']['state'] == 'test_failover' and tested['vm']['name'] == VM
    assert not any('roll disk' in a for a in tested['actions'])  # c3 is the newest: no rollback
    assert vm.snapshot is None and str(vm.runtime.powerState) == 'poweredOff'  # source untouched
    again = run('replica_failover', _args(lab, conn, 'test', test_network='DR Network'))
    assert not again['changed'] and not again.failed, again.output

    switch = run('replica_failover', _args(lab, conn, 'failed_over'))
    assert switch.failed and 'undo it first' in switch['msg'] and switch['fault'] == 'InvalidState', switch.output

    snap = lab.wait(vm.CreateSnapshot_Task('cycle-refused', '', False, False))
    try:
        refused = run('disk_replicate', dict(conn, name=VM, snapshot=snap._moId, disk_key=2000,
                                             source_datastore_paths=lab.state['sites']['source']['datastores'],
                                             target_datastore_paths=lab.state['sites']['target']['datastores']))
        assert refused.failed and 'refused' in refused['msg'], refused.output
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))

    lab.labctl('write', REPLICA, '--site', 'target', '--disk', 0, '--offset', 0, '--length', 65536, '--seed', 99)
    undone = run('replica_failover', _args(lab, conn, 'undone'), diff=True)
    assert undone['changed'] and not undone.failed, undone.output
    now = _replica(target_si)
    assert now['state'] == 'ready' and now['power'] == 'poweredOff' and now['snapshots'] == []
    assert now['network'] == 'VM Network' and not now['start_connected'] and now['failover'] is None
    assert _replica_sums(lab) == sums['c3']
    assert not run('replica_failover', _args(lab, conn, 'undone'))['changed']


def test_failover_to_older_point_and_undo(lab, conn, run, replicated, target_si):
    _vm, sums = replicated
    over = dict(restore_point='c2', network_map={'VM Network': 'DR Network'})
    failed_over = run('replica_failover', _args(lab, conn, 'failed_over', **over))
    assert failed_over['changed'] and not failed_over.failed, failed_over.output
    assert failed_over['restore_point']['id'] == 'c2'
    assert sum('roll disk' in a for a in failed_over['actions']) == 2
    print('failover to c2: actions %s, SOAP calls on the target %s' % (failed_over['actions'], failed_over['soap']))
    now = _replica(target_si)
    assert now['state'] == 'failed_over' and now['power'] == 'poweredOn' and now['network'] == 'DR Network'
    assert _replica_sums(lab) == sums['c2']

    lab.labctl('write', REPLICA, '--site', 'target', '--disk', 1, '--offset', MIB, '--length', 100000, '--seed', 5)
    assert _replica_sums(lab)[1] != sums['c2'][1]
    again = run('replica_failover', _args(lab, conn, 'failed_over', **over))
    assert not again['changed'] and not again.failed, again.output
    other = run('replica_failover', _args(lab, conn, 'failed_over', restore_point='c3'))
    assert other.failed and 'already in failed_over at restore point c2' in other['msg'], other.output

    undone = run('replica_failover', _args(lab, conn, 'undone'))
    assert undone['changed'] and not undone.failed, undone.output
    assert any('forward' in a for a in undone['actions'])
    assert _replica_sums(lab) == sums['c3']
    assert _replica(target_si)['state'] == 'ready'


def test_bad_points_are_clear(lab, conn, run, replicated, target_si):
    unknown = run('replica_failover', _args(lab, conn, 'failed_over', restore_point='c9'))
    assert unknown.failed and 'Unknown restore point c9' in unknown['msg'] and 'c1, c2, c3' in unknown['msg']
    assert unknown['fault'] == 'RestorePointNotFound'
    too_old = run('replica_failover', _args(lab, conn, 'failed_over', restore_point_time='2001-01-01T00:00:00Z'),
                  check=True)
    assert too_old.failed and 'No restore point at or before' in too_old['msg'], too_old.output
    newest = run('replica_failover', _args(lab, conn, 'failed_over', restore_point_time='2099-01-01T00:00:00Z'),
                 check=True)
    assert newest['changed'] and newest['restore_point']['id'] == 'c3', newest.output
    no_test_net = run('replica_failover', _args(lab, conn, 'test', test_network='No Such Net'))
    assert no_test_net.failed and "'No Such Net'" in no_test_net['msg'], no_test_net.output
    never = run('replica_failover', _args(lab, conn, 'committed'))
    assert never.failed and 'Only a failover can be committed' in never['msg'], never.output
    assert _replica(target_si)['state'] == 'ready' and _replica(target_si)['snapshots'] == []


def test_unplanned_failover_by_name_then_commit(lab, run, replicated, target_si):
    _vm, sums = replicated
    args = dict(target_args(lab), replica_name=REPLICA, target_datastore_paths=lab.state['sites']['target']['datastores'])
    plain = lab.new_vm('fo-plain', disks_mib=(1,), site='target')
    try:
        not_replica = run('replica_failover', dict(args, replica_name='fo-plain', state='failed_over'))
        assert not_replica.failed and not_replica['fault'] == 'NotOurReplica', not_replica.output
    finally:
        lab.destroy_vm(plain)
    unplanned = run('replica_failover', dict(args, state='failed_over', restore_point='c2'))
    assert unplanned['changed'] and not unplanned.failed, unplanned.output
    assert unplanned['vm']['name'] == VM  # from the replica's metadata: the source site was never contacted
    assert _replica(target_si)['state'] == 'failed_over' and _replica_sums(lab) == sums['c2']
    lab.labctl('write', REPLICA, '--site', 'target', '--disk', 0, '--offset', 0, '--length', 4096, '--seed', 3)
    ran = _replica_sums(lab)

    checked = run('replica_failover', dict(args, state='committed'), check=True)
    assert checked['changed'] and _replica(target_si)['state'] == 'failed_over', checked.output
    committed = run('replica_failover', dict(args, state='committed'), diff=True)
    assert committed['changed'] and not committed.failed, committed.output
    now = _replica(target_si)
    assert now['state'] == 'committed' and now['snapshots'] == [] and now['power'] == 'poweredOn'
    assert _replica_sums(lab) == ran  # what ran on the replica is kept
    assert committed['restore_point']['id'] == 'c2'
    assert not run('replica_failover', dict(args, state='committed'))['changed']
    undo = run('replica_failover', dict(args, state='undone'))
    assert undo.failed and 'committed' in undo['msg'], undo.output
