# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input to a real cycle: a target datastore that runs out of space mid-copy (a small tmpfs holding a copy of
the replica: clear error, nothing committed, and the next cycle works once there is space), and TLS with
validate_certs on against the lab's self-signed certificate, without and with ca_path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import subprocess
import time

import pytest

from faults_lab import sha256_file, snapshot_digests, steps

pytestmark = pytest.mark.timeout(600)

TARGET_DS = 'dr-ds1'
SPARE = 64 * 1024          # what the filler leaves free on the tmpfs: less than one block of a cycle


def _failed(log):
    return [r for r in steps(log) if not r['ok']]


def _du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


@pytest.fixture
def small_datastore(faults, tmp_path):
    """A tmpfs mount point (sized by the test with mount()); always unmounted at teardown."""
    point = str(tmp_path / 'tmpfs-ds')
    os.makedirs(point)
    state = {'mounted': False}

    def mount(size):
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d,mode=0755' % size, 'rvflt-full', point],
                       check=True, timeout=30)
        state['mounted'] = True
        return point
    yield mount
    if state['mounted']:
        if subprocess.run(['umount', point], timeout=30, check=False).returncode != 0:
            subprocess.run(['umount', '-l', point], timeout=30, check=False)


def test_target_datastore_full(faults, small_datastore, reliability):
    """The replica lives on a tmpfs with 64 KiB free: the copy fails naming the lack of space, the replica keeps
    its committed changeId, its restore points and its bytes; with space again the next cycle completes."""
    vm = 'flt-full'
    started = time.monotonic()
    faults.new_vm(vm)
    rc, log = faults.run(faults.job(vm, 'full-base'))
    assert rc == 0 and not _failed(log), _failed(log)
    _name, base_snap = snapshot_digests(log)
    stores = faults.site('target')['datastores']
    disks = faults.replica_disks(vm)
    folder = os.path.relpath(os.path.dirname(disks[0][1]), stores[TARGET_DS])
    assert not folder.startswith('..'), disks
    # the replica folder (disks and stores) copied onto a tmpfs with room for it and 4 MiB more
    used = _du(os.path.join(stores[TARGET_DS], folder))
    mount_point = small_datastore(used + 4 * (1 << 20))
    subprocess.run(['cp', '-a', '--sparse=always', os.path.join(stores[TARGET_DS], folder), mount_point],
                   check=True, timeout=60)
    paths = dict(stores, **{TARGET_DS: mount_point})
    copies = [os.path.join(mount_point, folder, os.path.basename(path)) for _k, path, _d, _c in disks]
    flats = [os.path.join(mount_point, folder, os.path.basename(data)) for _k, _p, data, _c in disks]
    before = [(faults.store(p).load()['change_id'], [x['id'] for x in faults.store(p).load()['restore_points']])
              for p in copies]
    extra_before = faults.replica_state(vm).get('disks')
    filler = os.path.join(mount_point, 'filler')
    st = os.statvfs(mount_point)
    with open(filler, 'wb') as f:
        f.write(b'\xa5' * (st.f_bavail * st.f_frsize - SPARE))
    faults.guest_write(vm, random.Random('full'), percent=20)

    rc, log = faults.run(faults.job(vm, 'full-nospace', target_datastore_paths=paths))
    assert rc == 0
    failed = _failed(log)
    assert failed and failed[0]['step'].startswith('disk_replicate'), steps(log)
    result = failed[0]['result']
    assert 'no space left' in result['msg'].lower(), result
    assert 'Nothing was committed' in result.get('hint', ''), result
    # nothing committed: changeIds, restore points and the replica bytes are those of the base cycle
    after = [(faults.store(p).load()['change_id'], [x['id'] for x in faults.store(p).load()['restore_points']])
             for p in copies]
    assert after == before
    assert faults.replica_state(vm).get('disks') == extra_before
    assert faults.snapshots(vm) == [] and not faults.replica_state(vm).get('lock')
    # the abort itself may not find the room to record itself: the open cycle is then rolled back by the recovery
    # every cycle starts with; once it has run, the replica holds exactly the bytes of its last restore point
    os.unlink(filler)
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
    for (key, _path, _data, capacity), copy, flat in zip(disks, copies, flats):
        with open_endpoint(copy, writable=True) as target:
            faults.store(copy).recover(target)
        assert faults.store(copy).load().get('open_cycle') is None
        assert sha256_file(flat, capacity) == base_snap[str(key)], 'replica disk %s on the full datastore changed' % key

    # space again: the next cycle on the same datastore completes and the replica is its snapshot
    rc, log = faults.run(faults.job(vm, 'full-again', target_datastore_paths=paths))
    assert rc == 0 and not _failed(log), _failed(log)
    _name, snap = snapshot_digests(log)
    verified = 0
    for (key, _path, _data, capacity), flat in zip(disks, flats):
        assert sha256_file(flat, capacity) == snap[str(key)]
        verified += capacity
    reliability.add(scenario='bad input: target datastore full (tmpfs)', points=1, fired=1, reruns_ok=1,
                    orphans_removed=0, lock_refusals=0, bytes_verified=verified,
                    seconds=round(time.monotonic() - started, 1))


def test_tls_without_and_with_ca_path(faults, reliability):
    """validate_certs on and no ca_path against the lab's self-signed certificate: the first module run fails with
    an error about the certificate and a hint naming ca_path, for the source and for the target connection; with
    ca_path the same cycle completes."""
    vm = 'flt-tls'
    started = time.monotonic()
    faults.new_vm(vm, disks_mib=(2, 1))
    for site in ('source', 'target'):
        job = faults.job(vm, 'tls-no-ca-%s' % site)
        job[site] = dict(job[site], validate_certs=True)
        job[site].pop('ca_path')
        rc, log = faults.run(job)
        assert rc == 0
        failed = _failed(log)
        assert failed and failed[0]['step'] == 'replica_register acquire', steps(log)
        result = failed[0]['result']
        assert 'certificate' in result['msg'].lower(), result
        assert 'ca_path' in result.get('hint', ''), result
        assert faults.site(site)['password'] not in repr(log)
    rc, log = faults.run(faults.job(vm, 'tls-with-ca'))
    assert rc == 0 and not _failed(log), _failed(log)
    _name, snap = snapshot_digests(log)
    verified = 0
    for key, _path, data, capacity in faults.replica_disks(vm):
        assert sha256_file(data, capacity) == snap[str(key)]
        verified += capacity
    reliability.add(scenario='bad input: TLS without / with ca_path', points=2, fired=2, reruns_ok=1,
                    orphans_removed=0, lock_refusals=0, bytes_verified=verified,
                    seconds=round(time.monotonic() - started, 1))
