# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention that counts sealed restore points (store.replica_store.prune_start, Cycle.commit(sealed=...)): a partial
point (a run killed after some disks committed it, before the seal) never pushes a sealed point out of a disk store,
and every point the replica VM lists stays on every disk, across kills at any disk of a cycle."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import random
import sys

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import advertised_points, seal_cycle
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import (
    ReplicaStore, ReplicaStoreError, prune_start,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_journal import FileTarget  # noqa: E402  pylint: disable=wrong-import-position

BS = 64 * 1024
SIZE = 512 * 1024


def _kept(ids, keep, sealed=None):
    return ids[prune_start(ids, keep, sealed):]


def test_without_a_sealed_list_retention_is_a_plain_count():
    ids = ['R1', 'R2', 'R3', 'R4']
    assert _kept(ids, 3) == ['R2', 'R3', 'R4']
    assert _kept(ids, 9) == ids
    assert _kept(['R1'], 1) == ['R1']


def test_the_two_reported_drifts():
    # retention 3: R2 was committed on one disk by a killed run; the rerun R4 must not push R1 out
    assert _kept(['R1', 'R2', 'R3', 'R4'], 3, ['R1', 'R3']) == ['R1', 'R2', 'R3', 'R4']
    # the disk that missed R2
    assert _kept(['R1', 'R3', 'R4'], 3, ['R1', 'R3']) == ['R1', 'R3', 'R4']
    # retention 2: the rerun R3 after the partial R2 keeps the previous good point R1
    assert _kept(['R1', 'R2', 'R3'], 2, ['R1']) == ['R1', 'R2', 'R3']
    assert _kept(['R1', 'R2', 'R3'], 2) == ['R2', 'R3']          # the old rule: R1 was lost


def test_every_point_the_vm_lists_stays_until_the_vm_drops_it():
    # VM lists R1..R3 (retention 3); committing R4 keeps R1 (the VM still lists it until R4 is sealed)
    assert _kept(['R1', 'R2', 'R3', 'R4'], 3, ['R1', 'R2', 'R3']) == ['R1', 'R2', 'R3', 'R4']
    # the next commit, after R4's seal dropped R1 from the VM
    assert _kept(['R1', 'R2', 'R3', 'R4', 'R5'], 3, ['R2', 'R3', 'R4']) == ['R2', 'R3', 'R4', 'R5']
    # pruning after the seal (the newest is sealed already): exactly what the VM lists
    assert _kept(['R1', 'R2', 'R3', 'R4'], 3, ['R2', 'R3', 'R4']) == ['R2', 'R3', 'R4']
    # retention 1: the last complete point survives a commit until the new one is sealed
    assert _kept(['R1', 'R2'], 1, ['R1']) == ['R1', 'R2']
    assert _kept(['R1', 'R2'], 1, ['R2']) == ['R2']


def test_partial_points_inside_the_window_stay_older_ones_go():
    ids = ['P0', 'S1', 'P2', 'P3', 'S4', 'P5', 'S6', 'N']
    assert _kept(ids, 3, ['S1', 'S4', 'S6']) == ['S1', 'P2', 'P3', 'S4', 'P5', 'S6', 'N']
    assert _kept(ids, 2, ['S1', 'S4', 'S6']) == ['S4', 'P5', 'S6', 'N']
    # sealed ids unknown to this disk (a disk added later) do not count
    assert _kept(['S4', 'N'], 3, ['S1', 'S2', 'S3']) == ['S4', 'N']
    # nothing older is sealed here: the plain count (no sealed point can be lost)
    assert _kept(['P1', 'P2', 'P3', 'N'], 2, []) == ['P3', 'N']
    assert _kept(['P1', 'P2', 'P3', 'N'], 2, ['X']) == ['P3', 'N']


def test_bad_retention_is_refused():
    for bad in (0, -1, None, '3', True):
        with pytest.raises(ReplicaStoreError, match='integer >= 1'):
            prune_start(['a'], bad, ['a'])


class Replica(object):
    """A replica VM's state (seal_cycle) with one store per disk; cycles committed on every disk or killed after
    some disks committed, as roles/replicate runs them."""

    def __init__(self, tmp_path, disks, retention):
        self.retention = retention
        self.state = {}
        self.rnd = random.Random('%d-%d' % (disks, retention))
        self.disks = []
        for index in range(disks):
            target = FileTarget(str(tmp_path / ('disk%d-flat.vmdk' % index)), SIZE)
            self.disks.append((target, ReplicaStore(str(tmp_path / ('disk%d.replicator' % index)))))
        self.images = [{} for _d in range(disks)]       # per disk: {point id: sha256 of the target}
        self.cycles = 0

    def sealed(self):
        return [p['id'] for p in self.state.get('points') or []]

    def cycle(self, commit_disks=None):
        """One cycle; commit_disks: how many disks commit before the run is killed (None: all, and sealed)."""
        self.cycles += 1
        cid = 'R%d' % self.cycles
        count = len(self.disks) if commit_disks is None else commit_disks
        for index, (target, store) in enumerate(self.disks):
            store.recover(target)
            first = store.load() is None
            c = store.begin(target, cycle_id=cid, journal=not first)
            writes = []
            for _w in range(self.rnd.randint(1, 6)):
                offset = self.rnd.randrange(0, SIZE // 512 - 16) * 512
                writes.append((offset, self.rnd.getrandbits(8 * 4096).to_bytes(4096, 'little')))
            c.preserve_many([(o, len(d)) for o, d in writes])
            for offset, data in writes:
                target.pwrite(offset, data)
            if index >= count:       # killed mid-copy of this disk: nothing of it committed, the run ends
                c.writer.close()
                store._unlock()      # the process died: its flock went with it
                break
            c.commit('cid-' + cid, b'map', SIZE, BS, retention=self.retention, sealed=self.sealed())
            self.images[index][cid] = hashlib.sha256(target.read_all()).hexdigest()
        if commit_disks is None:
            self.state.update(seal_cycle(self.state, {'id': cid, 'status': 'success', 'finished': 1e9 + self.cycles},
                                         self.retention))
        return cid

    def disk_points(self):
        return dict((index, store.load()['restore_points']) for index, (_t, store) in enumerate(self.disks)
                    if store.load() is not None)

    def check(self):
        """Every point the VM lists is on every disk and rolls back exactly there; partial points are not listed."""
        listed = [p['id'] for p in advertised_points(self.state)]
        assert [p['id'] for p in advertised_points(self.state, self.disk_points())] == listed
        assert len(listed) <= self.retention
        for index, (target, store) in enumerate(self.disks):
            store.recover(target)
            points = [p['id'] for p in store.load()['restore_points']]
            for pid in listed:
                store.rollback(target, pid)
                assert hashlib.sha256(target.read_all()).hexdigest() == self.images[index][pid], (index, pid)
            store.roll_forward(target)
            assert hashlib.sha256(target.read_all()).hexdigest() == self.images[index][points[-1]]
        return listed

    def close(self):
        for target, _store in self.disks:
            target.close()


@pytest.mark.parametrize('retention', [3, 2])
def test_reported_scenario_on_two_disks(tmp_path, retention):
    replica = Replica(tmp_path, 2, retention)
    try:
        for _i in range(retention):
            replica.cycle()
        good = replica.check()
        killed = replica.cycle(commit_disks=1)          # disk 0 commits, disk 1 is killed; never sealed
        assert [p['id'] for p in advertised_points(replica.state)] == good
        assert replica.check() == good                    # the killed run took nothing away
        rerun = replica.cycle()
        listed = replica.check()
        assert killed not in listed and listed == (good + [rerun])[-retention:]
        assert good[-1] in listed                         # the previous good point survives the rerun
        on_disk0 = [p['id'] for p in replica.disk_points()[0]]
        assert killed in on_disk0                         # still a step of disk 0's undo chain
        for _i in range(retention + 1):                   # retention moves on; the partial point ages out
            replica.cycle()
            replica.check()
        assert killed not in [p['id'] for p in replica.disk_points()[0]]
        assert all(len(points) <= retention + 1 for points in replica.disk_points().values())
    finally:
        replica.close()


@pytest.mark.parametrize('seed', [1, 2, 3, 4])
def test_random_kills_never_lose_a_listed_point(tmp_path, seed):
    rnd = random.Random(seed)
    disks, retention = rnd.randint(2, 3), rnd.randint(1, 4)
    replica = Replica(tmp_path, disks, retention)
    try:
        replica.cycle()
        ever_sealed = set(replica.sealed())
        for _i in range(14):
            killed = rnd.random() < 0.4
            replica.cycle(commit_disks=rnd.randrange(0, disks) if killed else None)
            ever_sealed.update(replica.sealed())
            replica.check()
            # bounded: the VM's points and the one sealed before them, and partial points only from there on
            for points in replica.disk_points().values():
                ids = [p['id'] for p in points]
                assert len([i for i in ids if i in ever_sealed]) <= retention + 1, ids
                assert ids[0] in ever_sealed or not set(ids[:-1]) & ever_sealed, ids
    finally:
        replica.close()
