# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash safety with real processes: a store operation runs in a child process that SIGKILLs itself at a seeded I/O
event (mid journal record, mid target block, before an fsync / rename / unlink); then recover() must leave the target
byte-identical to what the committed manifest describes, and replication must continue normally."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import random
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import scenario  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.replicator.vsphere.plugins.module_utils.store import replica_store as rs_mod  # noqa: E402
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore  # noqa: E402

# operation -> number of seeded kill points (at least 20 for the replication cycle itself)
KILLS = {'cycle': 24, 'rollback': 10, 'roll_forward': 5, 'rollback_noredo': 5, 'commit_rollback': 3, 'prune': 3}
_EVENTS = {}


def _env():
    env = dict(os.environ)
    root = rs_mod.__file__.split(os.sep + 'ansible_collections' + os.sep, maxsplit=1)[0]
    env['PYTHONPATH'] = os.pathsep.join([root, env.get('PYTHONPATH', '')])
    return env


def _prepare(tmp):
    """Three committed cycles (c0 seeded without a journal); returns (disk, state_dir, {point: image digest})."""
    disk, state = os.path.join(tmp, 'disk-flat.vmdk'), os.path.join(tmp, 'disk.replicator')
    images = {}
    with scenario.open_target(disk, create=True) as t:
        store = ReplicaStore(state)
        for n in range(3):
            scenario.run_cycle(store, t, 'c%d' % n, n, journal=n > 0)
            images['c%d' % n] = scenario.image_digest(t)
        image = bytearray(os.pread(t.fd, t.size, 0))
    scenario.apply_batches(image, scenario.cycle_batches(3))
    images['c3'] = scenario.hashlib.sha256(bytes(image)).hexdigest()
    return disk, state, images


def _pre_state(op, disk, state):
    if op in ('roll_forward', 'commit_rollback'):
        with scenario.open_target(disk) as t:
            ReplicaStore(state).rollback(t, 'c0')


def _run(disk, state, op, kill_at):
    proc = subprocess.run([sys.executable, os.path.join(HERE, 'crash_driver.py'), state, disk, op, str(kill_at)],
                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    return proc


def _events(op, tmp):
    if op not in _EVENTS:
        os.mkdir(tmp)
        disk, state, dummy = _prepare(tmp)
        _pre_state(op, disk, state)
        proc = _run(disk, state, op, 0)
        assert proc.returncode == 0, proc.stderr.decode()
        _EVENTS[op] = int(proc.stdout)
    return _EVENTS[op]


def _check_all_points(t, store, images):
    m = store.load()
    for p in reversed(m['restore_points']):
        store.rollback(t, p['id'])
        assert scenario.image_digest(t) == images[p['id']], 'restore point %s' % p['id']
    store.roll_forward(t)
    assert scenario.image_digest(t) == images[m['restore_points'][-1]['id']]


CASES = [(op, i) for op, n in sorted(KILLS.items()) for i in range(n)]


@pytest.mark.parametrize('op,index', CASES, ids=['%s-%d' % c for c in CASES])
def test_sigkill_then_recover(tmp_path, op, index):
    total = _events(op, str(tmp_path / 'dry'))
    points = sorted(random.Random('kill-' + op).sample(range(1, total + 1), min(KILLS[op], total)))
    if index >= len(points):
        pytest.skip('%s has only %d I/O events' % (op, total))
    kill_at = points[index]
    tmp = str(tmp_path / 'run')
    os.mkdir(tmp)
    disk, state, images = _prepare(tmp)
    _pre_state(op, disk, state)
    proc = _run(disk, state, op, kill_at)
    assert proc.returncode == -signal.SIGKILL, 'event %d/%d: rc %d %s' % (
        kill_at, total, proc.returncode, proc.stderr.decode())
    with scenario.open_target(disk) as t:
        store = ReplicaStore(state)
        store.recover(t)
        m = store.load()                     # the committed manifest is valid
        assert m['open_cycle'] is None and m['pending'] is None
        rb = m['rolled_back']
        expected = rb['point'] if rb else m['restore_points'][-1]['id']
        assert scenario.image_digest(t) == images[expected], 'killed at event %d/%d of %s' % (kill_at, total, op)
        assert store.recover(t) == []        # idempotent, nothing left to do
        if rb:
            store.roll_forward(t)
            assert scenario.image_digest(t) == images[m['restore_points'][-1]['id']]
        newest = store.load()['restore_points'][-1]['id']
        if m['digest_map'] is not None:
            assert store.read_digest_map() == b'digest-map-' + newest.encode()
        # replication continues: a new cycle commits and every retained point is reachable
        image = bytearray(os.pread(t.fd, t.size, 0))
        scenario.apply_batches(image, scenario.cycle_batches(9))
        images['c9'] = scenario.hashlib.sha256(bytes(image)).hexdigest()
        scenario.run_cycle(store, t, 'c9', 9)
        assert scenario.image_digest(t) == images['c9']
        _check_all_points(t, store, images)
        leftovers = [n for n in os.listdir(state) if n.endswith('.tmp') or n.startswith('redo-')]
        assert leftovers == []
