# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replica store: manifest generations, cycles, recovery, rollback / roll forward, retention, error messages."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import random
import sys
import time

import pytest
from ansible_collections.replicator.vsphere.plugins.module_utils.store import replica_store as replica_store_module

from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import (
    MANIFEST, MANIFEST_PREV, ReplicaStore, ReplicaStoreError,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_journal import FileTarget  # noqa: E402  pylint: disable=wrong-import-position

BS = 64 * 1024
SIZE = 1024 * 1024 + 3 * 512          # short last block


def digest(data):
    return hashlib.sha256(bytes(data)).hexdigest()


@pytest.fixture
def env(tmp_path):
    t = FileTarget(str(tmp_path / 'disk-flat.vmdk'), SIZE)
    store = ReplicaStore(str(tmp_path / 'disk.replicator'))
    yield store, t
    t.close()


def run_cycle(store, t, writes, cycle_id=None, journal=True, retention=None, commit=True):
    """writes: list of (offset, bytes). Returns the point (or the open cycle when commit=False)."""
    c = store.begin(t, cycle_id=cycle_id, journal=journal)
    for off, data in writes:
        c.preserve(off, len(data))
        if data.count(0) == len(data):
            t.write_zeroes(off, len(data))
        else:
            t.pwrite(off, data)
    if not commit:
        return c
    return c.commit('cid-%s' % c.id, b'map-' + c.id.encode(), t.size, BS, retention=retention)


def test_first_cycle_and_manifest_generations(env):
    store, t = env
    assert store.load() is None and store.read_digest_map() is None
    p = run_cycle(store, t, [(0, b'a' * 4096)], cycle_id='c1', journal=False)
    assert p['id'] == 'c1' and p['journal'] is None and p['change_id'] == 'cid-c1'
    m = store.load()
    assert m['generation'] == 2 and m['change_id'] == 'cid-c1' and m['capacity'] == SIZE and m['block_size'] == BS
    assert [x['id'] for x in m['restore_points']] == ['c1'] and m['open_cycle'] is None
    prev = json.loads(open(os.path.join(store.state_dir, MANIFEST_PREV)).read())
    assert prev['generation'] == 1 and prev['open_cycle']['id'] == 'c1'
    assert store.read_digest_map() == b'map-c1'
    run_cycle(store, t, [(4096, b'b' * 512)], cycle_id='c2')
    assert store.load()['generation'] == 4 and store.read_digest_map() == b'map-c2'
    names = sorted(os.listdir(store.state_dir))
    assert names == ['digests-2.bin', 'digests-4.bin', 'journal-c2.rvj', 'lock', MANIFEST, MANIFEST_PREV]


def test_corrupt_manifest_falls_back_to_previous_generation(env):
    store, t = env
    run_cycle(store, t, [(0, b'a' * 4096)], cycle_id='c1')
    run_cycle(store, t, [(0, b'b' * 4096)], cycle_id='c2')
    path = os.path.join(store.state_dir, MANIFEST)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data.replace(b'"cid-c2"', b'"cid-cX"'))     # valid JSON, wrong checksum
    s2 = ReplicaStore(store.state_dir)
    m = s2.load()
    assert m['generation'] == 3 and m['open_cycle']['id'] == 'c2'
    assert 'checksum mismatch' in s2.warnings[0] and 'previous generation 3' in s2.warnings[0]
    actions = s2.recover(t)                 # the previous generation says c2 is open: roll it back
    assert any('rolled back uncommitted cycle c2' in a for a in actions)
    assert t.read_all()[:4096] == b'a' * 4096
    assert s2.load()['generation'] == 4
    for name in (MANIFEST, MANIFEST_PREV):
        with open(os.path.join(store.state_dir, name), 'wb') as f:
            f.write(b'{"truncated')
    with pytest.raises(ReplicaStoreError, match='corrupt.*restore manifest.json from a backup'):
        ReplicaStore(store.state_dir).load()


def test_state_dir_errors(tmp_path, env):
    dummy, t = env
    with pytest.raises(ReplicaStoreError, match='parent .* does not exist'):
        ReplicaStore(str(tmp_path / 'nope' / 'x.replicator')).begin(t)
    with pytest.raises(ReplicaStoreError, match='nothing has been replicated'):
        ReplicaStore(str(tmp_path / 'none.replicator')).rollback(t, 'x')
    ro = tmp_path / 'ro.replicator'
    ro.mkdir()
    os.chmod(str(ro), 0o500)
    try:
        if os.access(str(ro), os.W_OK):
            pytest.skip('running as root: permissions are not enforced')
        with pytest.raises(ReplicaStoreError, match='not writable'):
            ReplicaStore(str(ro)).begin(t)
    finally:
        os.chmod(str(ro), 0o700)


def test_capacity_mismatch_and_begin_while_uncommitted(tmp_path, env, monkeypatch):
    store, t = env
    monkeypatch.setattr(replica_store_module, 'LOCK_WAIT', 0.5)
    run_cycle(store, t, [(0, b'a' * 512)], cycle_id='c1')
    other = FileTarget(str(tmp_path / 'other.img'), SIZE - 512)   # a shrunk disk (a grown one is accepted: its next cycle records the new size)
    with pytest.raises(ReplicaStoreError, match='capacity mismatch.*resize the replica disk'):
        store.begin(other)
    other.close()
    c = run_cycle(store, t, [(512, b'b' * 512)], cycle_id='c2', commit=False)
    with pytest.raises(ReplicaStoreError, match=r'in use by pid %d on \S+ since 20\d\d-' % os.getpid()):
        ReplicaStore(store.state_dir).begin(t)
    c.writer.close()
    c.store._unlock()                        # simulate the process dying without committing
    s2 = ReplicaStore(store.state_dir)
    with pytest.raises(ReplicaStoreError, match='never committed: call recover'):
        s2.begin(t)
    c.closed = False
    with pytest.raises(ReplicaStoreError, match='capacity mismatch: commit'):
        c.commit('x', None, SIZE + 512, BS)
    assert s2.recover(t)[0].startswith('rolled back uncommitted cycle c2')
    assert t.read_all()[:1024] == b'a' * 512 + bytes(512)
    assert s2.recover(t) == []                 # idempotent
    run_cycle(s2, t, [(512, b'c' * 512)], cycle_id='c3')


def test_abort_restores_and_unknown_point(env):
    store, t = env
    run_cycle(store, t, [(0, os.urandom(8192))], cycle_id='c1')
    before = t.read_all()
    c = run_cycle(store, t, [(4096, os.urandom(70000)), (SIZE - 512, b'z' * 512), (0, bytes(8192))], commit=False)
    assert c.abort()[0].startswith('rolled back')
    assert t.read_all() == before and store.load()['open_cycle'] is None
    with pytest.raises(ReplicaStoreError, match=r"unknown restore point 'c9'; known points.*c1"):
        store.rollback(t, 'c9')
    with pytest.raises(ReplicaStoreError, match='beyond the end'):
        store.begin(t).preserve(SIZE - 512, 1024)


def test_rollback_redo_commit_rollback_and_begin_refused(env):
    store, t = env
    images = {}
    for i in range(4):
        run_cycle(store, t, [(i * 100000, os.urandom(150000)), (SIZE - 1024, bytes([i + 1]) * 1024)], cycle_id='p%d' % i)
        images['p%d' % i] = t.read_all()
    store.rollback(t, 'p1')
    assert t.read_all() == images['p1']
    with pytest.raises(ReplicaStoreError, match='rolled back to restore point p1.*refused'):
        store.begin(t)
    store.rollback(t, 'p0')
    assert t.read_all() == images['p0']
    store.rollback(t, 'p2')                     # newer than the current rolled-back point
    assert t.read_all() == images['p2']
    assert store.roll_forward(t)[0].startswith('rolled forward')
    assert t.read_all() == images['p3'] and store.load()['rolled_back'] is None
    store.rollback(t, 'p1')
    store.commit_rollback()
    m = store.load()
    assert [p['id'] for p in m['restore_points']] == ['p0', 'p1'] and m['change_id'] == 'cid-p1'
    assert m['digest_map'] is None and store.read_digest_map() is None
    assert not [n for n in os.listdir(store.state_dir) if n.startswith('redo') or n in ('journal-p2.rvj', 'journal-p3.rvj')]
    run_cycle(store, t, [(0, b'q' * 512)], cycle_id='p4')
    store.rollback(t, 'p0', keep_redo=False)
    assert t.read_all() == images['p0']
    assert [p['id'] for p in store.load()['restore_points']] == ['p0']
    with pytest.raises(ReplicaStoreError, match='not rolled back'):
        store.commit_rollback()


def test_prune_only_removes_older_points(env):
    store, t = env
    images = {}
    for i in range(5):
        run_cycle(store, t, [(i * 512, bytes([i + 1]) * 4096)], cycle_id='p%d' % i, retention=3)
        images['p%d' % i] = t.read_all()
    m = store.load()
    assert [p['id'] for p in m['restore_points']] == ['p2', 'p3', 'p4']
    assert m['restore_points'][0]['journal'] is None
    assert sorted(n for n in os.listdir(store.state_dir) if n.endswith('.rvj')) == ['journal-p3.rvj', 'journal-p4.rvj']
    store.rollback(t, 'p2')
    with pytest.raises(ReplicaStoreError, match='rolled back to p2, which would be removed'):
        store.prune(1)
    assert store.prune(3) == []
    store.roll_forward(t)
    assert store.prune(2) == ['p2']
    with pytest.raises(ReplicaStoreError, match='unknown restore point'):
        store.rollback(t, 'p2')
    store.rollback(t, 'p3')
    assert t.read_all() == images['p3']
    with pytest.raises(ReplicaStoreError, match='integer >= 1'):
        store.prune(0)


def test_reseed_without_journal_drops_older_points(env):
    store, t = env
    run_cycle(store, t, [(0, b'a' * 512)], cycle_id='p0')
    run_cycle(store, t, [(0, b'b' * 512)], cycle_id='p1')
    c = run_cycle(store, t, [(0, b'c' * 512)], cycle_id='p2', journal=False, commit=False)
    m = store.load()
    assert m['restore_points'] == [] and m['change_id'] is None
    c.writer = None
    c.store._unlock()
    assert 'must copy the whole disk' in ReplicaStore(store.state_dir).recover(t)[0]


def _random_write(rnd, size):
    off = rnd.randrange(0, size // 512) * 512
    n = min(size - off, rnd.choice([512, 1536, 4096, BS, BS + 512, 3 * BS - 1024, 200 * 1024]))
    kind = rnd.random()
    if kind < 0.3:
        data = bytes(n)                                   # zeros over data
    elif kind < 0.6:
        data = bytes([rnd.randrange(256)]) * n            # compressible
    else:
        data = rnd.getrandbits(8 * n).to_bytes(n, 'little')
    return off, data


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_property_random_cycles_every_point_reachable(tmp_path, seed):
    rnd = random.Random(seed)
    size = rnd.choice([SIZE, 1024 * 1024 - 512, 700 * 512])
    t = FileTarget(str(tmp_path / 'disk.img'), size)
    store = ReplicaStore(str(tmp_path / 'disk.replicator'))
    images = {}
    kept = 0
    try:
        for n in range(9):
            retention = rnd.randint(2, 4)
            writes = [_random_write(rnd, size) for dummy in range(rnd.randint(1, 12))]
            run_cycle(store, t, writes, cycle_id='c%d' % n, journal=n > 0, retention=retention)
            images['c%d' % n] = digest(t.read_all())
            points = [p['id'] for p in store.load()['restore_points']]
            kept = min(kept + 1, retention)
            assert len(points) == kept and points[-1] == 'c%d' % n
            order = points[:]
            rnd.shuffle(order)
            for pid in order:
                store.rollback(t, pid)
                assert digest(t.read_all()) == images[pid], 'rollback to %s after cycle %d' % (pid, n)
            store.roll_forward(t)
            assert digest(t.read_all()) == images[points[-1]]
            if n == 5:                                     # a committed rollback, then replication continues
                store.rollback(t, points[0])
                store.commit_rollback()
                assert digest(t.read_all()) == images[points[0]]
                kept = 1
    finally:
        t.close()


def test_a_store_lock_let_go_within_the_wait_is_taken(env):
    """A copy of a run that ended stops within seconds: the next operation waits for its lock instead of failing."""
    import threading
    store, t = env
    run_cycle(store, t, [(0, b'a' * 512)], cycle_id='c1')
    holder = ReplicaStore(store.state_dir)
    holder._lock()
    threading.Timer(0.5, holder._unlock).start()
    started = time.monotonic()
    cycle = ReplicaStore(store.state_dir).begin(t, cycle_id='c2')      # waits for the lock, then opens its cycle
    assert 0.3 < time.monotonic() - started < replica_store_module.LOCK_WAIT
    cycle.abort()
