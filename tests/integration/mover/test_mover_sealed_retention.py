# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention that counts sealed points travels with the cycle (replicate_disk(sealed_points=...) -> END info ->
Receiver.commit -> Cycle.commit), to the local receiver and over SSH: a point left out of the sealed list (a partial
one) does not push a sealed point out, and every kept point rolls back byte-exact. A plain number still counts
every point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 4 * MIB


@pytest.mark.parametrize('remote', [False, True], ids=['local', 'ssh'])
def test_sealed_points_reach_the_store(request, tmp_path, remote):
    receiver = request.getfixturevalue('sshd').spec() if remote else 'local'
    rnd = random.Random(7)
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=3)
    dst = str(tmp_path / 'dst.img')
    store = ReplicaStore(dst + '.replicator')
    images = {}
    # c1 sealed, c2 partial (its run died before the seal), c3 sealed, c4 committed: retention 2 keeps c1 (the VM
    # lists c1 and c3 until c4 is sealed), and c2 as the step from c3 back to c1
    sealed_before = {1: [], 2: ['c1'], 3: ['c1'], 4: ['c1', 'c3']}
    for cycle in range(1, 5):
        cid = 'c%d' % cycle
        changes = []
        if cycle > 1:
            offset = rnd.randrange(0, SIZE - MIB) // 4096 * 4096
            changes = [(offset, rnd.getrandbits(8 * 65536).to_bytes(65536, 'little'))]
            for off, data in changes:
                patch(src, off, data)
        kwargs = {'cbt_extents': [(o, len(d)) for o, d in changes]} if cycle > 1 else {'create_target': True}
        replicate_disk(src, dst, 'cbt' if cycle > 1 else 'full', receiver=receiver, change_id='52 bb/%d' % cycle,
                       retention=2, sealed_points=sealed_before[cycle], cycle_id=cid, allowed_roots=[str(tmp_path)],
                       **kwargs)
        images[cid] = digest_file(dst)
    assert [p['id'] for p in store.load()['restore_points']] == ['c1', 'c2', 'c3', 'c4']
    with open_endpoint(dst, writable=True) as target:
        for point in ('c3', 'c2', 'c1'):
            store.rollback(target, point)
            assert digest_file(dst) == images[point], point
        store.roll_forward(target)
    assert digest_file(dst) == images['c4'] == digest_file(src)
    # c4 sealed (the VM drops c1): the next cycle prunes c1 and the partial c2 with it
    patch(src, MIB, b'five')
    replicate_disk(src, dst, 'cbt', cbt_extents=[(MIB, 4)], receiver=receiver, change_id='52 bb/5', retention=2,
                   sealed_points=['c3', 'c4'], cycle_id='c5', allowed_roots=[str(tmp_path)])
    assert [p['id'] for p in store.load()['restore_points']] == ['c3', 'c4', 'c5']
    # a plain number counts every point, as before
    patch(src, 2 * MIB, b'six')
    replicate_disk(src, dst, 'cbt', cbt_extents=[(2 * MIB, 3)], receiver=receiver, change_id='52 bb/6', retention=2,
                   cycle_id='c6', allowed_roots=[str(tmp_path)])
    assert [p['id'] for p in store.load()['restore_points']] == ['c5', 'c6']
