# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore points made by real replication cycles (local and SSH receivers), unreachable NBD sources, and
deduplication against another replica disk over SSH."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError, open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore

from integration_servers import free_port
from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 12 * MIB + 1024


def _random_changes(rnd, count):
    """Guest writes of a cycle: data, zeros over data, 512-byte writes and one at the disk end."""
    changes = []
    for _index in range(count):
        length = rnd.choice((512, 4096, 65536, MIB + 512))
        offset = rnd.randrange(0, SIZE - length) // 512 * 512
        data = bytes(length) if rnd.random() < 0.25 else rnd.getrandbits(8 * length).to_bytes(length, 'little')
        changes.append((offset, data))
    changes.append((SIZE - 512, rnd.getrandbits(8 * 512).to_bytes(512, 'little')))
    return changes


@pytest.mark.parametrize('remote', [False, True], ids=['local', 'ssh'])
def test_every_retained_point_rolls_back_byte_exact(request, tmp_path, remote):
    receiver = request.getfixturevalue('sshd').spec() if remote else 'local'
    rnd = random.Random(2026)
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=21)
    dst = str(tmp_path / 'dst.img')
    images = {}
    for cycle in range(1, 7):
        if cycle > 1:
            changes = _random_changes(rnd, 6)
            for offset, data in changes:
                patch(src, offset, data)
            kwargs = {'cbt_extents': [(o, len(d)) for o, d in changes]}
            plan = 'cbt' if cycle % 2 else 'digests'
        else:
            kwargs, plan = {'create_target': True}, 'full'
        if plan != 'cbt':
            kwargs.pop('cbt_extents', None)
        result = replicate_disk(src, dst, plan, receiver=receiver, change_id='52 aa/%d' % cycle, retention=4,
                                allowed_roots=[str(tmp_path)], **kwargs)
        assert digest_file(src) == digest_file(dst), 'cycle %d' % cycle
        images[result.restore_point['id']] = digest_file(src)
    store = ReplicaStore(dst + '.replicator')
    points = [p['id'] for p in store.load()['restore_points']]
    assert len(points) == 4 and points[-1] == result.restore_point['id']
    with open_endpoint(dst, writable=True) as target:
        for point in reversed(points):
            store.rollback(target, point)
            assert digest_file(dst) == images[point], 'restore point %s' % point
        store.roll_forward(target)
    assert digest_file(dst) == digest_file(src)
    # after roll_forward the next cycle continues from the newest point
    patch(src, 5 * MIB, b'after roll forward')
    replicate_disk(src, dst, 'cbt', cbt_extents=[(5 * MIB, 18)], receiver=receiver, change_id='52 aa/7',
                   allowed_roots=[str(tmp_path)])
    assert digest_file(src) == digest_file(dst)


def test_unreachable_nbd_source_writes_nothing(tmp_path):
    port = free_port()  # nothing listens there
    dst = str(tmp_path / 'dst.img')
    with pytest.raises(EndpointError) as err:
        replicate_disk('nbd://127.0.0.1:%d/disk' % port, dst, 'full', create_target=True)
    assert '127.0.0.1:%d' % port in str(err.value)
    assert not os.path.exists(dst) and not os.path.exists(dst + '.replicator')


def test_dedupe_against_another_replica_over_ssh(sshd, tmp_path):
    size = 16 * MIB
    first = make_image(str(tmp_path / 'tmpl-a.img'), size, seed=8, data_fraction=1.0)
    second = str(tmp_path / 'tmpl-b.img')
    with open(first, 'rb') as f, open(second, 'wb') as g:
        g.write(f.read())
    patch(second, 6 * MIB, os.urandom(MIB))
    ra, rb = str(tmp_path / 'ra.img'), str(tmp_path / 'rb.img')
    roots = [str(tmp_path)]
    full = replicate_disk(first, ra, 'full', receiver=sshd.spec(), create_target=True, allowed_roots=roots)
    deduped = replicate_disk(second, rb, 'full', receiver=sshd.spec(), create_target=True, allowed_roots=roots,
                             dedupe_sources=[{'target': ra}])
    assert digest_file(second) == digest_file(rb)
    assert deduped.stats['bytes_deduplicated'] >= 14 * MIB
    assert deduped.stats['bytes_sent'] < full.stats['bytes_sent'] / 4
