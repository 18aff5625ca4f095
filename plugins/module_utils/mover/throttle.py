# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Token bucket bandwidth limit (MB/s, 1 MB = 10^6 bytes) for the data mover's wire traffic."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

# Credit the bucket may hold: 50 ms of traffic, at least 64 KiB. A pause of the sender up to that long (a slow read,
# a late wake-up from sleep) is made up afterwards; anything longer is lost, never sent as a burst above the limit.
# A larger credit lets the sender run at the link's speed after a pause or at the start: with a quarter second
# (the former default) a 62.5 MB/s limit on a 1 Gbit/s link put 15.6 MB on the wire at link speed first.
BURST_SECONDS = 0.05
MIN_BURST = 64 * 1024
# Debts shorter than this are carried to the next take() instead of sleeping (a sleep costs ~0.1 ms and
# oversleeps): header-only frames (zero runs, dedupe copies) do not each call sleep.
MIN_SLEEP = 0.002


class TokenBucket(object):
    """take(n) charges n bytes and blocks until they are paid for. rate_mbps <= 0 or None = unlimited.

    The sender charges each frame after writing it (header + payload); a charge larger than the credit is a debt
    that take() sleeps off, so a 1 MiB block passes at any rate and the next one waits. The bucket starts empty
    and holds at most `burst` bytes of credit (default BURST_SECONDS of traffic, at least MIN_BURST) or the size of
    the frame being charged, whichever is more, so over any window of W seconds at most rate * W + burst + two
    frames pass. clock/sleep are injectable for tests."""

    def __init__(self, rate_mbps, burst=None, clock=time.monotonic, sleep=time.sleep, min_sleep=MIN_SLEEP):
        self.rate = float(rate_mbps or 0) * 1000000.0
        self.burst = float(burst if burst is not None else max(self.rate * BURST_SECONDS, MIN_BURST))
        self.clock = clock
        self.sleep = sleep
        self.min_sleep = min_sleep
        self.tokens = 0.0
        self.last = clock()
        self.waited = 0.0

    @property
    def unlimited(self):
        return self.rate <= 0

    def take(self, n):
        if self.rate <= 0 or n <= 0:
            return 0.0
        now = self.clock()
        # credit up to this frame's own size counts too: the time its write took (the sender charges after the
        # write; a 16 MiB block on a link just above the limit takes longer than the burst) is not lost
        self.tokens = min(max(self.burst, n), self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        delay = -self.tokens / self.rate
        if delay < self.min_sleep:
            return 0.0      # carried: the next take() pays it (refill counts from `last`, the time of this charge)
        self.sleep(delay)
        self.waited += delay
        return delay
