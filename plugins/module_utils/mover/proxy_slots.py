# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-proxy limit of concurrent disk copies: N slot files in a directory of the proxy, each held with flock by
the process that copies. Any number of forks, async jobs and playbook runs on the same proxy share the limit; a
process that dies releases its slot with it (the kernel drops the lock), so a crashed run never leaks one."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import json
import os
import random
import time

DEFAULT_DIR = '/var/tmp/replicator-vsphere/slots'


class SlotTimeout(Exception):
    """Every slot stayed busy for the whole wait."""


class ProxySlots(object):
    """Context manager: `with ProxySlots(directory, 4, timeout=3600) as slot:` holds one of 4 slots.

    slots <= 0 means no limit (nothing is locked). `slot.index` is the slot held, `slot.waited` the seconds spent
    waiting for it. `owner` (a short description of the copy) is written into the slot file for operators."""

    def __init__(self, directory, slots, timeout=3600.0, poll=0.25, owner='', clock=time.monotonic, sleep=time.sleep):
        self.directory = directory or DEFAULT_DIR
        self.slots = int(slots or 0)
        self.timeout = float(timeout)
        self.poll = poll
        self.owner = owner
        self.clock = clock
        self.sleep = sleep
        self.index = None
        self.waited = 0.0
        self._fd = None

    def _try(self, index):
        path = os.path.join(self.directory, 'slot-%d' % index)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({'pid': os.getpid(), 'since': time.time(), 'owner': self.owner}).encode('utf-8'))
        return fd

    def holders(self):
        """What each busy slot file says (pid, since, owner), for a message; best effort."""
        found = []
        for index in range(self.slots):
            try:
                with open(os.path.join(self.directory, 'slot-%d' % index)) as f:
                    found.append(json.loads(f.read() or '{}'))
            except (IOError, OSError, ValueError):
                continue
        return found

    def __enter__(self):
        if self.slots <= 0:
            return self
        try:
            os.makedirs(self.directory, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise SlotTimeout('Cannot create the slot directory %s: %s. Set proxy_slots_dir to a writable directory '
                                  'of this proxy.' % (self.directory, exc.strerror))
        start = self.clock()
        order = list(range(self.slots))
        random.shuffle(order)  # spread holders over the slot files
        while True:
            for index in order:
                fd = self._try(index)
                if fd is not None:
                    self._fd, self.index = fd, index
                    self.waited = self.clock() - start
                    return self
            if self.clock() - start >= self.timeout:
                owners = ', '.join(h.get('owner') or 'pid %s' % h.get('pid') for h in self.holders())
                raise SlotTimeout(
                    'All %d disk copy slots of this proxy stayed busy for %d s (held by: %s). Raise proxy_slots, '
                    'raise slot_timeout, or spread the VMs over more proxies.' % (self.slots, self.timeout, owners or '?'))
            self.sleep(self.poll)

    def __exit__(self, *exc):
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing drops the flock
            self._fd = None
        return False
