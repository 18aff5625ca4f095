# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""snapshot_consolidate through ansible against the lab: only our old snapshots go, then deferred consolidation."""

from __future__ import absolute_import, division, print_function

import pytest

__metaclass__ = type

pyVmomi = pytest.importorskip('pyVmomi')

VM = 'mod-consolidate-vm'


@pytest.fixture(scope='module')
def vm(lab):
    vm = lab.new_vm(VM, disks_mib=(4,), cbt=True, seed=20, power_on=True)
    lab.control('source', 'defer-consolidate', method='POST', vm=VM, enabled=1)
    yield vm
    lab.destroy_vm(vm)


def names(vm):
    out = []

    def visit(nodes):
        for n in nodes or []:
            out.append(n.name)
            visit(n.childSnapshotList)
    visit(vm.snapshot.rootSnapshotList if vm.snapshot else [])
    return out


def checksum(lab, vm):
    return lab.labctl('checksum', VM, '--disk', 0)['disks'][0]['sha256']


def snap(lab, vm, name):
    return lab.wait(vm.CreateSnapshot_Task(name=name, description='', memory=False, quiesce=False))


def test_orphans_removed_user_snapshots_kept_then_consolidated(lab, ansible_module, vm):
    # user -> replicator-cycle-1 -> user-child -> replicator-cbt-stun-1 (a failed run left two of ours)
    for seed, name in enumerate(('user', 'replicator-cycle-1', 'user-child', 'replicator-cbt-stun-1')):
        snap(lab, vm, name)
        lab.labctl('write', VM, '--disk', 0, '--offset', seed * 65536, '--length', 65536, '--seed', seed + 7)
    data_before = checksum(lab, vm)

    young = ansible_module('snapshot_consolidate', name=VM)  # default min_age 3600: all ours are too young
    assert young['changed'] is False and young['removed'] == []
    assert young['kept'] == ['replicator-cbt-stun-1', 'replicator-cycle-1']
    assert young['consolidation_needed'] is False and young['consolidated'] is False
    print('SOAP snapshot_consolidate (nothing to do, min_age): %d %s' % (young['soap_total'], young['soap']))

    check = ansible_module('snapshot_consolidate', check=True, diff=True, name=VM, min_age=0)
    assert check['changed'] is True and check['tasks'] == []
    assert [r['name'] for r in check['removed']] == ['replicator-cbt-stun-1', 'replicator-cycle-1']  # deepest first
    assert all(r['task'] is None for r in check['removed'])
    assert check['diff']['before']['orphans'] == ['replicator-cbt-stun-1', 'replicator-cycle-1']
    assert names(vm) == ['user', 'replicator-cycle-1', 'user-child', 'replicator-cbt-stun-1']

    done = ansible_module('snapshot_consolidate', name=VM, min_age=0)
    assert done['changed'] is True, done
    assert [r['name'] for r in done['removed']] == ['replicator-cbt-stun-1', 'replicator-cycle-1']
    assert all(r['task'].startswith('task-') for r in done['removed'])
    assert names(vm) == ['user', 'user-child']
    assert done['consolidation_needed'] is True and done['consolidated'] is True
    assert len(done['tasks']) == 3 and done['task'] == done['tasks'][-1]
    assert vm.runtime.consolidationNeeded is False
    assert checksum(lab, vm) == data_before  # the guest sees the same data after removal and consolidation
    print('SOAP snapshot_consolidate (2 removals + consolidate): %d %s' % (done['soap_total'], done['soap']))

    again = ansible_module('snapshot_consolidate', name=VM, min_age=0)
    assert again['changed'] is False and again['removed'] == [] and again['kept'] == []
    assert names(vm) == ['user', 'user-child']


def test_consolidation_alone(lab, ansible_module, vm):
    """No orphan, but a removal left deltas behind: consolidate only (and check mode says it would)."""
    child = vm.snapshot.rootSnapshotList[0].childSnapshotList[0].snapshot
    lab.wait(child.RemoveSnapshot_Task(removeChildren=False))
    assert vm.runtime.consolidationNeeded is True
    check = ansible_module('snapshot_consolidate', check=True, name=VM)
    assert check['changed'] is True and check['consolidated'] is True and check['tasks'] == []
    assert vm.runtime.consolidationNeeded is True
    off = ansible_module('snapshot_consolidate', name=VM, consolidate=False)
    assert off['changed'] is False and off['consolidation_needed'] is True
    done = ansible_module('snapshot_consolidate', name=VM)
    assert done['changed'] is True and done['consolidated'] is True and done['removed'] == []
    assert vm.runtime.consolidationNeeded is False
    assert ansible_module('snapshot_consolidate', name=VM)['changed'] is False


def test_bad_input(ansible_module):
    assert ansible_module('snapshot_consolidate', name='no-such-vm')['fault'] == 'NotFound'
    empty = ansible_module('snapshot_consolidate', name=VM, prefix='')
    assert empty['failed'] is True and 'prefix must not be empty' in empty['msg']
    negative = ansible_module('snapshot_consolidate', name=VM, min_age=-1)
    assert negative['failed'] is True and 'min_age' in negative['msg']
    conn = ansible_module.connection()
    bad = ansible_module('snapshot_consolidate', connection=dict(conn, password='x-wrong'), name=VM)
    assert bad['failed'] is True and bad['fault'] == 'InvalidLogin'
    down = ansible_module('snapshot_consolidate', connection=dict(conn, port=ansible_module.free_port(), timeout=5),
                          name=VM)
    assert down['failed'] is True and 'Cannot reach' in down['msg']
