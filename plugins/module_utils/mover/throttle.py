# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token bucket bandwidth limit (MB/s, 1 MB = 10^6 bytes) for the data mover's wire traffic."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time


class TokenBucket(object):
    """take(n) blocks until n bytes may pass. rate_mbps <= 0 or None = unlimited.

    The bucket holds at most `burst` bytes (default: a quarter second of traffic, at least 1 MiB), so a pause is
    never followed by a burst larger than that. clock/sleep are injectable for tests."""

    def __init__(self, rate_mbps, burst=None, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate_mbps or 0) * 1000000.0
        self.burst = float(burst if burst is not None else max(self.rate / 4.0, 1024 * 1024))
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.burst
        self.last = clock()
        self.waited = 0.0

    @property
    def unlimited(self):
        return self.rate <= 0

    def take(self, n):
        if self.rate <= 0 or n <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        delay = -self.tokens / self.rate
        self.sleep(delay)
        self.waited += delay
        return delay
