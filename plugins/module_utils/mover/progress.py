# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a disk copy as a small JSON file, replaced atomically (write tmp + rename) so readers never see a
partial document. Fields: stage, bytes_done, bytes_total, rate_bps, eta_seconds, elapsed_seconds, updated."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time


class Progress(object):
    """update() is cheap; the file is rewritten at most every `interval` seconds (and on stage changes / close)."""

    def __init__(self, path=None, total=0, interval=1.0, clock=time.monotonic, extra=None):
        self.path = path
        self.total = total
        self.done = 0
        self.stage = 'starting'
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_write = None
        self.extra = dict(extra or {})

    def snapshot(self):
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        remaining = max(self.total - self.done, 0)
        eta = remaining / rate if rate > 0 else None
        doc = {'stage': self.stage, 'bytes_done': self.done, 'bytes_total': self.total, 'rate_bps': int(rate),
               'eta_seconds': round(eta, 1) if eta is not None else None, 'elapsed_seconds': round(elapsed, 3),
               'percent': round(100.0 * self.done / self.total, 2) if self.total else (100.0 if self.stage == 'done' else 0.0),
               'updated': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        doc.update(self.extra)
        return doc

    def write(self):
        if not self.path:
            return
        tmp = '%s.tmp.%d' % (self.path, os.getpid())
        with open(tmp, 'w') as f:
            json.dump(self.snapshot(), f, sort_keys=True)
        os.replace(tmp, self.path)
        self._last_write = self.clock()

    def set_stage(self, stage, total=None):
        self.stage = stage
        if total is not None:
            self.total = total
        self.write()

    def add(self, n):
        self.done += n
        if self.path and (self._last_write is None or self.clock() - self._last_write >= self.interval):
            self.write()
