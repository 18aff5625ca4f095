# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one store operation and SIGKILL this process at the K-th I/O event (K=0: never; prints the event count).

Events: os.write / os.pwrite (the kill lands after HALF of the buffer is written: a torn record or block),
os.fsync, os.replace, os.unlink, os.ftruncate and FileEndpoint.write_zeroes (kill before the call).
usage: crash_driver.py STATE_DIR DISK OP K
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import FileEndpoint  # noqa: E402
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore  # noqa: E402

COUNT = [0]
KILL_AT = int(sys.argv[4])


def _event():
    COUNT[0] += 1
    return COUNT[0] == KILL_AT


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _torn(real):
    def call(fd, data, *rest):
        if _event():
            view = memoryview(data).cast('B')
            real(fd, view[:len(view) // 2], *rest)
            _die()
        return real(fd, data, *rest)
    return call


def _before(real):
    def call(*args, **kwargs):
        if _event():
            _die()
        return real(*args, **kwargs)
    return call


def main():
    state_dir, disk, op = sys.argv[1:4]
    target = scenario.open_target(disk)
    store = ReplicaStore(state_dir)
    os.write = _torn(os.write)
    os.pwrite = _torn(os.pwrite)
    for name in ('fsync', 'replace', 'unlink', 'ftruncate'):
        setattr(os, name, _before(getattr(os, name)))
    FileEndpoint.write_zeroes = _before(FileEndpoint.write_zeroes)
    if op == 'cycle':
        scenario.run_cycle(store, target, 'c3', 3)
    elif op == 'rollback':
        store.rollback(target, 'c0')
    elif op == 'rollback_noredo':
        store.rollback(target, 'c1', keep_redo=False)
    elif op == 'roll_forward':
        store.roll_forward(target)
    elif op == 'commit_rollback':
        store.commit_rollback()
    elif op == 'prune':
        store.prune(1)
    else:
        raise SystemExit('unknown op %s' % op)
    sys.stdout.write('%d\n' % COUNT[0])


if __name__ == '__main__':
    main()
