# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replica_info against the lab: one replica and all replicas, state, lock, RPO, and the SOAP calls it costs."""

from __future__ import absolute_import, division, print_function

import json
import time

import pytest

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import (
    set_extra_config, target_args, vm_named,
)

__metaclass__ = type

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope='module')
def replicas(lab, conn, target_si, run):
    """Two replicas (of two VMs of the test's own) with restore points of different ages; removed at the end."""
    made, names = [], ('ri-one', 'ri-two')
    base = dict(conn, datacenter='SRC-DC', target_host='dr-esx01', target_datastore='dr-ds1', replica_name='{name}-dr')
    try:
        for name in names:
            made.append(lab.new_vm(name, disks_mib=(4, 2)))
            result = run('replica_register', dict(base, name=name))
            assert result.status == 'CHANGED', result.output
        now = int(time.time())
        set_extra_config(lab, vm_named(target_si, 'ri-one-dr'), {
            'replicator.points': json.dumps([{'id': 'p1', 'created': now - 7200, 'consistency': 'crash'},
                                             {'id': 'p2', 'created': now - 600, 'consistency': 'crash'}]),
            'replicator.last_cycle': json.dumps({'status': 'success', 'started': now - 660, 'finished': now - 600,
                                                 'bytes_sent': 1234}),
            'replicator.lock': json.dumps({'owner': 'ctl', 'run': 'r1', 'acquired': now - 10, 'expires': now + 600})})
        set_extra_config(lab, vm_named(target_si, 'ri-two-dr'), {
            'replicator.points': json.dumps([{'id': 'p1', 'created': now - 6 * 3600, 'consistency': 'crash'}]),
            'replicator.lock': json.dumps({'owner': 'ctl', 'run': 'r0', 'acquired': now - 7200,
                                           'expires': now - 3600})})
        yield dict(zip(names, made))
    finally:
        for name in names:
            run('replica_register', dict(base, name=name, state='absent'))
        for vm in made:
            lab.destroy_vm(vm)


def test_all_replicas_in_one_property_collector_call(lab, replicas, run):
    args = dict(target_args(lab), rpo='4h')
    result = run('replica_info', args)
    counts = result['soap']
    assert result.status == 'SUCCESS', result.output
    mine = dict((r['name'], r) for r in result['replicas'] if r['name'] in ('ri-one-dr', 'ri-two-dr'))
    assert sorted(mine) == ['ri-one-dr', 'ri-two-dr']
    one, two = mine['ri-one-dr'], mine['ri-two-dr']
    assert one['source']['instance_uuid'] == replicas['ri-one'].config.instanceUuid
    assert one['source']['name'] == 'ri-one' and one['state'] == 'ready' and one['power_state'] == 'poweredOff'
    assert [(d['source_key'], d['capacity_bytes'], d['change_id']) for d in one['disks']] == \
        [(2000, 4 << 20, None), (2001, 2 << 20, None)]
    assert [p['id'] for p in one['points']] == ['p1', 'p2'] and one['last_cycle']['bytes_sent'] == 1234
    assert one['rpo']['met'] is True and 540 <= one['rpo']['age_seconds'] <= 3600
    assert two['rpo']['met'] is False and two['rpo']['rpo_seconds'] == 4 * 3600
    assert one['lock']['held'] is True and one['lock']['run'] == 'r1'
    assert two['lock']['expired'] is True and two['lock']['held'] is False
    assert 'ri-two-dr' in result['rpo_missed'] and 'ri-one-dr' not in result['rpo_missed']
    assert counts.get('CreateContainerView') == 1 and counts.get('RetrievePropertiesEx') == 1, counts
    assert 'FindAllByUuid' not in counts and 'ContinueRetrievePropertiesEx' not in counts
    print('SOAP calls on the target for replica_info (all, %d replicas): %s'
          % (len(result['replicas']), json.dumps(counts, sort_keys=True)))


def test_one_replica_by_source_uuid_name_or_replica_moid(lab, replicas, run):
    uuid = replicas['ri-two'].config.instanceUuid
    args = dict(target_args(lab), source_uuid=uuid)
    by_uuid = run('replica_info', args)
    counts = by_uuid['soap']
    assert [r['name'] for r in by_uuid['replicas']] == ['ri-two-dr'], by_uuid.output
    # FindAllByUuid + one read of the replica, then one scan of name + extraConfig of every VM for the hot-add
    # markers on proxy VMs (a disk of this replica left attached to a proxy shows in proxy_attachments)
    assert counts.get('FindAllByUuid') == 1 and counts.get('RetrievePropertiesEx') == 2, counts
    assert counts.get('CreateContainerView') == 1 and counts.get('DestroyView') == 1, counts
    assert by_uuid['replicas'][0]['proxy_attachments'] == [] and 'ContinueRetrievePropertiesEx' not in counts
    print('SOAP calls on the target for replica_info (one, by source uuid): %s' % json.dumps(counts, sort_keys=True))
    moid = by_uuid['replicas'][0]['moid']
    by_moid = run('replica_info', dict(target_args(lab), replica_moid=moid))
    assert by_moid['replicas'] == by_uuid['replicas']
    by_name = run('replica_info', dict(target_args(lab), source_name='ri-two'))
    assert [r['moid'] for r in by_name['replicas']] == [moid]
    assert run('replica_info', dict(target_args(lab), replica_name='nothing-here'))['replicas'] == []
    bad = run('replica_info', dict(target_args(lab), rpo='soon'))
    assert bad.failed and 'Not a duration' in bad['msg']
