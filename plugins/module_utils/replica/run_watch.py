# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disk copy stops by itself when its run is gone.

The copies of a cycle run as async jobs, detached from ansible-playbook: killing or cancelling the playbook does not
end them. While one copies, a watcher thread checks
  - the run's ansible-playbook process, every second, where that is provable (same host and boot): gone -> stop;
  - the replica's run lock, every `lock_interval` seconds: held by another run, released, or its lease run out
    (the run stopped renewing it) -> stop.
Stopping sets the mover's cancel event: the copy stops before its next block, the receiver aborts the cycle, and
nothing of it is committed (the last restore point stays as it was).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.replica import run_owner
from ansible_collections.replicator.vsphere.plugins.module_utils.replica.state import decode
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch

PROCESS_INTERVAL = 1.0
LOCK_INTERVAL = 30.0


class CancelEvent(threading.Event):
    """An Event that says why it was set."""

    def __init__(self):
        threading.Event.__init__(self)
        self.reason = None

    def stop(self, reason):
        if not self.is_set():
            self.reason = reason
            self.set()


def lock_verdict(lock, run_id, now):
    """Why the run `run_id` no longer holds `lock` (the replica's lock as decoded), or None while it does."""
    if not lock:
        return 'the replica lock of run %s was released' % run_id
    if lock.get('run') != run_id:
        return 'run %s of %s took over the replica lock of run %s' % (lock.get('run'), lock.get('owner'), run_id)
    if lock.get('expires', 0) <= now:
        return ('the lease of run %s ran out at %s: the run stopped renewing it (its ansible-playbook ended, or lost '
                'its connection)' % (run_id, run_owner.iso(lock.get('expires'))))
    return None


class RunWatch(object):
    """Watch a run while a copy goes on (a context manager); `cancel` is the mover's cancel event."""

    def __init__(self, process=None, client=None, vm=None, run_id=None, lock_interval=LOCK_INTERVAL,
                 process_interval=PROCESS_INTERVAL, clock=time.time):
        self.process = process
        self.client, self.vm, self.run_id = client, vm, run_id
        self.lock_interval = lock_interval
        self.process_interval = process_interval
        self.clock = clock
        self.cancel = CancelEvent()
        self._done = threading.Event()
        self._thread = None

    def check_process(self):
        if run_owner.alive(self.process) is False:
            self.cancel.stop('the ansible-playbook process of its run (%s) has ended'
                             % run_owner.describe(self.process))

    def check_lock(self):
        try:
            state = decode(fetch(self.client, self.vm, ['config.extraConfig'])['config.extraConfig'])
        except VsphereError:
            return      # a passing fault of vCenter is no proof that the run is gone; the next check decides
        reason = lock_verdict(state.get('lock'), self.run_id, self.clock())
        if reason:
            self.cancel.stop(reason)

    def _run(self):
        next_lock = time.monotonic() + self.lock_interval
        while not self._done.wait(self.process_interval) and not self.cancel.is_set():
            if self.process:
                self.check_process()
            if self.client is not None and self.run_id and time.monotonic() >= next_lock:
                self.check_lock()
                next_lock = time.monotonic() + self.lock_interval

    def __enter__(self):
        if self.process or (self.client is not None and self.run_id):
            self._thread = threading.Thread(target=self._run, name='run-watch')
            self._thread.daemon = True
            self._thread.start()
        return self.cancel

    def __exit__(self, *exc):
        self._done.set()
        if self._thread is not None:
            self._thread.join(self.lock_interval + 5)
        return False
