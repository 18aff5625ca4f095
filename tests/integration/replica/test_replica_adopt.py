# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""replica_register adopt / state=forgotten / reset_change_ids against the lab, run through Ansible: check mode,
apply, re-apply, the seeded copy into an adopted VM (only differences travel), the digests cycle after a reset,
and the refusals (disk count, capacity, power state, snapshots, another replica's metadata)."""

from __future__ import absolute_import, division, print_function

import json

import pytest

from ansible_collections.replicator.vsphere.tests.integration.replica.conftest import extra_config, set_extra_config

__metaclass__ = type

MIB = 1 << 20
pytestmark = pytest.mark.timeout(900)


def _register(conn, name, **extra):
    args = dict(conn, name=name, datacenter='SRC-DC')
    args.update(extra)
    return args


def _copy(lab, conn, name, snapshot, key, **extra):
    args = dict(conn, name=name, snapshot=snapshot, disk_key=key,
                source_datastore_paths=lab.state['sites']['source']['datastores'],
                target_datastore_paths=lab.state['sites']['target']['datastores'], retention=3)
    args.update(extra)
    return args


def _replicator_keys(vm):
    return sorted(k for k in extra_config(vm) if k.startswith('replicator.'))


def _sha(lab, vm, disk, site='source', snapshot=None):
    args = ['checksum', vm, '--disk', disk, '--site', site]
    if snapshot:
        args += ['--snapshot', snapshot]
    return lab.labctl(*args)['disks'][0]['sha256']


@pytest.fixture
def vms(lab):
    made = []

    def make(name, **kwargs):
        vm = lab.new_vm(name, **kwargs)
        made.append(vm)
        return vm
    yield make
    for vm in made:
        try:
            lab.destroy_vm(vm)
        except Exception:  # pylint: disable=broad-except
            pass  # already gone


def test_adopt_copy_forget(lab, conn, run, vms):
    """A target VM holding nearly the source's data is adopted; a seeded copy sends only what differs; then its
    replication metadata is forgotten and the VM stays with its data."""
    src = vms('ad-src', disks_mib=(8, 4), seed=50)
    copy = vms('ad-copy', disks_mib=(8, 4), seed=50, site='target')  # same seeds: the same data
    assert _sha(lab, 'ad-src', 0) == _sha(lab, 'ad-copy', 0, site='target')
    written = lab.labctl('write', 'ad-src', '--disk', 0, '--offset', 2 * MIB, '--length', 3 * 65536, '--seed', 11)
    args = _register(conn, 'ad-src', adopt={'name': 'ad-copy'})

    checked = run('replica_register', args, check=True, diff=True)
    assert checked.status == 'CHANGED', checked.output
    assert checked['replica']['moid'] == copy._moId and checked['replica']['state'] == 'ready'
    assert any(a.startswith("adopt VM 'ad-copy'") for a in checked['actions'])
    assert _replicator_keys(copy) == [], 'check mode wrote replication metadata'

    adopted = run('replica_register', args)
    assert adopted.status == 'CHANGED', adopted.output
    replica = adopted['replica']
    assert replica['moid'] == copy._moId and replica['name'] == 'ad-copy'
    assert replica['source']['instance_uuid'] == src.config.instanceUuid
    assert [(d['source_key'], d['key'], d['capacity_bytes'], d['change_id']) for d in replica['disks']] == \
        [(2000, 2000, 8 * MIB, None), (2001, 2001, 4 * MIB, None)]
    assert json.loads(extra_config(copy)['replicator.source'])['name'] == 'ad-src'
    again = run('replica_register', args)
    assert again.status == 'SUCCESS', again.output

    snap = lab.wait(src.CreateSnapshot_Task('adopt-1', 'cycle', False, False))
    try:
        for index, key in enumerate((2000, 2001)):
            moved = run('disk_replicate', _copy(lab, conn, 'ad-src', snap._moId, key, plan='seeded', cycle_id='a1'),
                        site='source')
            assert moved['plan']['kind'] == 'seeded', moved.output
            capacity = moved['disk']['capacity_bytes']
            # only the blocks the source wrote after the copy was made differ (1 MiB blocks)
            assert moved['stats']['bytes_sent'] <= (2 * MIB + 4096 if index == 0 else 4096), moved['stats']
            assert moved['stats']['bytes_sent'] < capacity // 4
            assert _sha(lab, 'ad-src', index, snapshot='adopt-1') == _sha(lab, 'ad-copy', index, site='target')
            print('adopted disk %d: %d bytes written by the guest, %d sent of %d' % (
                key, written['bytes'] if index == 0 else 0, moved['stats']['bytes_sent'], capacity))
    finally:
        lab.wait(snap.RemoveSnapshot_Task(False))

    forget = _register(conn, 'ad-src', state='forgotten')
    checked = run('replica_register', forget, check=True, diff=True)
    assert checked.status == 'CHANGED' and checked['diff']['after'] == {'exists': True, 'metadata': False}
    assert _replicator_keys(copy), 'check mode forgot the metadata'
    forgotten = run('replica_register', forget)
    assert forgotten.status == 'CHANGED', forgotten.output
    assert _replicator_keys(copy) == []
    assert lab.find_vm(lab.connect('target'), 'ad-copy')._moId == copy._moId
    assert _sha(lab, 'ad-src', 0) == _sha(lab, 'ad-copy', 0, site='target'), 'forgetting touched the disks'
    again = run('replica_register', forget)
    assert again.status == 'SUCCESS' and again['replica'] is None, again.output


def test_reset_change_ids_forces_one_digests_cycle(lab, conn, run, vms):
    """After reset_change_ids the next cycle compares digests (never CBT), sends only the differences, and records
    a changeId again, so the cycle after it is CBT again."""
    src = vms('rc-src', disks_mib=(6,), seed=40, cbt=True)
    register = _register(conn, 'rc-src', target_host='dr-esx01', target_datastore='dr-ds1', replica_name='rc-{name}')
    try:
        assert not run('replica_register', register).failed

        def cycle(name, **extra):
            snap = lab.wait(src.CreateSnapshot_Task(name, 'cycle', False, False))
            try:
                moved = run('disk_replicate', _copy(lab, conn, 'rc-src', snap._moId, 2000, cycle_id=name, **extra),
                            site='source')
                if not moved.failed:
                    assert _sha(lab, 'rc-src', 0, snapshot=name) == _sha(lab, 'rc-rc-src', 0, site='target')
                return moved
            finally:
                lab.wait(snap.RemoveSnapshot_Task(False))

        assert cycle('rc1')['plan']['kind'] == 'full'
        lab.labctl('write', 'rc-src', '--offset', MIB, '--length', 8192, '--seed', 3)
        assert cycle('rc2')['plan']['kind'] == 'cbt'

        reset = dict(register, reset_change_ids=True)
        checked = run('replica_register', reset, check=True)
        assert checked.status == 'CHANGED', checked.output
        assert checked['replica']['disks'][0]['change_id'] is None
        rvm = lab.find_vm(lab.connect('target'), 'rc-rc-src')
        assert json.loads(extra_config(rvm)['replicator.disk.2000'])['change_id'], 'check mode reset the changeId'
        applied = run('replica_register', reset)
        assert applied.status == 'CHANGED' and any('forget the committed changeIds' in a for a in applied['actions'])
        assert json.loads(extra_config(rvm)['replicator.disk.2000'])['change_id'] is None
        assert run('replica_register', reset).status == 'SUCCESS'
        assert run('replica_register', register).status == 'SUCCESS', 'a plain run brought a changeId back'

        # the source is written where CBT cannot say it was (as a failback writes): the digests plan still finds it
        lab.labctl('write', 'rc-src', '--offset', 3 * MIB, '--length', 4096, '--seed', 5)
        refused = cycle('rc3', plan='cbt')
        assert refused.failed and 'reset_change_ids' in refused['msg'], refused.output
        digests = cycle('rc3')
        assert digests['plan']['kind'] == 'digests' and 'no changeId' in digests['plan']['reason'], digests.output
        assert 0 < digests['stats']['bytes_sent'] <= MIB + 4096
        assert json.loads(extra_config(rvm)['replicator.disk.2000'])['change_id'] == digests['committed_change_id']
        lab.labctl('write', 'rc-src', '--offset', 4 * MIB, '--length', 4096, '--seed', 6)
        assert cycle('rc4')['plan']['kind'] == 'cbt'
    finally:
        run('replica_register', dict(register, state='absent'))


def test_adopt_refusals(lab, conn, run, vms):
    """Every refused adoption fails with a clear message and writes nothing."""
    vms('af-src', disks_mib=(8, 4))
    fewer = vms('af-fewer', disks_mib=(8,), site='target')
    smaller = vms('af-smaller', disks_mib=(8, 2), site='target')
    running = vms('af-running', disks_mib=(8, 4), site='target', power_on=True)
    snapped = vms('af-snapped', disks_mib=(8, 4), site='target')
    lab.wait(snapped.CreateSnapshot_Task('keep', '', False, False))
    other = vms('af-other', disks_mib=(8, 4), site='target')
    set_extra_config(lab, other, {'replicator.format': '1', 'replicator.state': 'ready',
                                  'replicator.source': json.dumps({'instance_uuid': 'another-vm', 'name': 'db99'})})
    expected = {
        'af-fewer': (fewer, 'the source has 2 disks, the VM has 1'),
        'af-smaller': (smaller, 'is 2097152 bytes, the source disk 4194304 bytes'),
        'af-running': (running, 'only a powered-off VM is adopted'),
        'af-snapped': (snapped, 'has snapshots'),
        'af-other': (other, 'carries replication metadata (replica of db99'),
    }
    for name, (vm, message) in sorted(expected.items()):
        before = _replicator_keys(vm)
        for check in (True, False):
            result = run('replica_register', _register(conn, 'af-src', adopt={'name': name}), check=check)
            assert result.failed and message in result['msg'], (name, result.output)
        assert _replicator_keys(vm) == before, '%s: a refused adoption wrote metadata' % name
    missing = run('replica_register', _register(conn, 'af-src', adopt={'name': 'af-nowhere'}))
    assert missing.failed and 'not found' in missing['msg'], missing.output
    placement = run('replica_register', _register(conn, 'af-src'))
    assert placement.failed and 'needs target_datastore' in placement['msg'], placement.output
    both = run('replica_register', _register(conn, 'af-src', adopt={'name': 'a', 'moid': 'b'}))
    assert both.failed and 'mutually exclusive' in both['msg'], both.output
