# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bandwidth limit's rate over time, on a fake clock: the sender's frames (header + payload, charged after the
write, as _Pipeline._wire does) through a TokenBucket, a link faster than the limit, a sleep that oversleeps and
a reader that stalls now and then. Deterministic (seeded), no real time."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.wire import FRAME_HEADER_SIZE
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.throttle import TokenBucket

KIB = 1024
MIB = 1024 * KIB
TOLERANCE = 0.05


class SimClock(object):
    """Fake monotonic clock; sleep() oversleeps like a loaded machine (0-1 ms, 1 in 50 sleeps 5-20 ms late)."""

    def __init__(self, rnd):
        self.now = 0.0
        self.rnd = rnd

    def __call__(self):
        return self.now

    def sleep(self, s):
        late = self.rnd.uniform(0.005, 0.02) if self.rnd.random() < 0.02 else self.rnd.uniform(0.0, 0.001)
        self.now += s + late


def frames(rnd, block_size):
    """Payload length per emitted frame, like bench images: ~50% holes (a header-only ZERO frame per 8 blocks, the
    emitter merges runs), ~25% text (zstd to ~40%), ~25% random (raw), now and then a dedupe COPY (header only)."""
    while True:
        r = rnd.random()
        if r < 0.5:
            if rnd.random() < 0.125:
                yield 0
        elif r < 0.75:
            yield int(block_size * rnd.uniform(0.3, 0.5))
        elif r < 0.97:
            yield block_size
        else:
            yield 0


def simulate(rate_mbps, block_size, seconds, link_factor=8.0, seed=1, bucket=None):
    """Run the sender against the bucket for `seconds` of fake time. Returns (sends, end, bucket): sends is
    [(time the frame started on the wire, bytes)], end the time the last take() returned."""
    rnd = random.Random(seed)
    clock = SimClock(rnd)
    tb = bucket(clock) if bucket else TokenBucket(rate_mbps, clock=clock, sleep=clock.sleep)
    link = rate_mbps * 1e6 * link_factor
    sends = []
    stall = rnd.expovariate(0.2)
    for payload in frames(rnd, block_size):
        if clock.now >= seconds:
            break
        # the emitter waits for the workers' next block: mostly ready, every ~5 s a 30-80 ms read stall
        clock.now += rnd.uniform(0.0, 0.00002)
        if clock.now >= stall:
            clock.now += rnd.uniform(0.03, 0.08)
            stall = clock.now + rnd.expovariate(0.2)
        n = FRAME_HEADER_SIZE + payload
        sends.append((clock.now, n))
        clock.now += n / link          # the write blocks while the link carries it
        tb.take(n)                      # _Pipeline._wire: charged after the write
    return sends, clock.now, tb


def worst_window(sends, window):
    """Most bytes that started on the wire within any `window` seconds (each frame counted whole at its start)."""
    best = 0
    j = 0
    total = 0
    for i in range(len(sends)):
        while j < len(sends) and sends[j][0] <= sends[i][0] + window:
            total += sends[j][1]
            j += 1
        best = max(best, total)
        total -= sends[i][1]
    return best


def steady(sends, lo=0.1, hi=0.9):
    """Rate between the moments lo and hi of all bytes had passed (as bench_wan.py's steady column)."""
    total = sum(n for _t, n in sends)
    done = 0
    t_lo = t_hi = None
    for t, n in sends:
        if t_lo is None and done >= total * lo:
            t_lo = (t, done)
        if done >= total * hi:
            t_hi = (t, done)
            break
        done += n
    return (t_hi[1] - t_lo[1]) / (t_hi[0] - t_lo[0])


@pytest.mark.parametrize('rate_mbps', [12.5, 125.0])
@pytest.mark.parametrize('block_size', [64 * KIB, MIB, 4 * MIB, 16 * MIB])
@pytest.mark.parametrize('link_factor', [8.0, 1.1])
def test_rate_within_tolerance(rate_mbps, block_size, link_factor):
    rate = rate_mbps * 1e6
    frame_s = (block_size + FRAME_HEADER_SIZE) / rate
    # a window in which the bucket's credit plus two frames (one sent before it is charged, one the credit may
    # hold) are under 4% of the traffic
    window = max(2.0, 25 * (0.05 + 2 * frame_s))
    sends, end, tb = simulate(rate_mbps, block_size, seconds=max(30.0, 3 * window), link_factor=link_factor)
    sent = sum(n for _t, n in sends)
    long_run = sent / end
    assert abs(long_run / rate - 1) <= TOLERANCE, (long_run / 1e6, rate_mbps)
    peak = worst_window(sends, window) / window
    assert peak <= rate * (1 + TOLERANCE), ('%.2f MB/s over %.1f s windows' % (peak / 1e6, window), rate_mbps)
    assert abs(steady(sends) / rate - 1) <= TOLERANCE
    assert tb.waited > 0


def test_start_is_not_a_burst():
    """The first second on a link 8x faster than the limit carries the limit, not the link (the former quarter-second
    bucket, full at the start, let 31 MB through at 125 MB/s: +25% over the first second)."""
    sends, _end, _tb = simulate(125.0, MIB, seconds=3.0)
    first = sum(n for t, n in sends if t < 1.0)
    assert first <= 125e6 * (1 + TOLERANCE) + MIB


def test_former_bucket_fails_the_window_check():
    """The check above catches the cause: a quarter second of credit, full at the start."""
    def former(clock):
        tb = TokenBucket(62.5, burst=62.5e6 / 4, clock=clock, sleep=clock.sleep)
        tb.tokens = tb.burst
        return tb
    sends, _end, _tb = simulate(62.5, MIB, seconds=10.0, bucket=former)
    assert worst_window(sends, 2.0) / 2.0 > 62.5e6 * (1 + TOLERANCE)


def test_long_pause_is_not_made_up():
    """After a pause longer than the credit the sender resumes at the limit, not at the link's speed."""
    c = SimClock(random.Random(3))
    tb = TokenBucket(125, clock=c, sleep=c.sleep)
    for _i in range(100):
        tb.take(MIB)
    c.now += 5.0                         # the source stalled for 5 s
    t0 = c.now
    for _i in range(120):                # 125.8 MB
        tb.take(MIB)
    assert (120 * MIB - tb.burst) / 125e6 <= c.now - t0


def test_small_debts_are_carried_not_slept():
    """Header-only frames (zero runs, dedupe copies) do not each sleep; the debt is paid once it is worth a sleep
    and the long-run rate is exact."""
    slept = []
    now = [0.0]

    def sleep(s):
        slept.append(s)
        now[0] += s
    tb = TokenBucket(12.5, clock=lambda: now[0], sleep=sleep)
    for _i in range(100000):
        tb.take(FRAME_HEADER_SIZE)
    total = 100000 * FRAME_HEADER_SIZE
    assert len(slept) < 100000 * FRAME_HEADER_SIZE / (12.5e6 * 0.002) + 2
    assert abs(now[0] - total / 12.5e6) <= 0.002 + 1e-9
