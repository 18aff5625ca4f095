# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Latency for a link between two network namespaces, without netem (the kernel here has none).

    delay_relay.py NS_A DEV_A NS_B DEV_B --delay-ms 10 [--max-seconds 900] [--queue 4096]

Creates a TUN device DEV_A inside namespace NS_A and DEV_B inside NS_B, then relays every IP packet read from one
device to the other after holding it `--delay-ms` (one way; the round trip gets twice that). The devices exist only
while this process holds them open: when it exits they are gone. It prints `ready` on stdout once both exist and
exits when stdin closes (its parent went away), after `--max-seconds`, or on SIGTERM; it then prints per-direction
packet/byte/drop counts as JSON on stderr. Each direction queues at most `--queue` packets (a router's buffer: the
tail is dropped beyond it). Rate limits belong on the devices (tc tbf), not here. Needs root (CAP_NET_ADMIN).
"""

from __future__ import absolute_import, division, print_function

import argparse
import collections
import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454ca
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
READ_BATCH = 256            # packets read from one device before the other gets its turn
MAX_PACKET = 65536


def setns(name):
    """Move this (single-threaded) process into network namespace `name` (os.setns needs Python 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open('/run/netns/%s' % name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, 'setns(%s): %s' % (name, os.strerror(err)))
    finally:
        os.close(fd)


def open_tun(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH22x', name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Direction(object):
    def __init__(self, name, src, dst, limit):
        self.name = name
        self.src = src
        self.dst = dst
        self.limit = limit
        self.queue = collections.deque()
        self.packets = self.bytes = self.dropped = 0

    def pull(self, due):
        for _i in range(READ_BATCH):
            try:
                pkt = os.read(self.src, MAX_PACKET)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise
            if len(self.queue) >= self.limit:
                self.dropped += 1
                continue
            self.queue.append((due, pkt))

    def push(self, now):
        q = self.queue
        while q and q[0][0] <= now:
            pkt = q.popleft()[1]
            try:
                os.write(self.dst, pkt)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                    raise
                self.dropped += 1       # device queue full or down: lost like on a real link
                continue
            self.packets += 1
            self.bytes += len(pkt)

    def next_due(self):
        return self.queue[0][0] if self.queue else None

    def report(self):
        return {'packets': self.packets, 'bytes': self.bytes, 'dropped': self.dropped}


class Stop(Exception):
    pass


def _stop(_sig, _frame):
    raise Stop()


def relay(fa, fb, delay, max_seconds, limit):
    a2b = Direction('a->b', fa, fb, limit)
    b2a = Direction('b->a', fb, fa, limit)
    dirs = {fa: a2b, fb: b2a}
    poller = select.poll()
    for fd in (fa, fb, 0):
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + max_seconds
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            dues = [d for d in (a2b.next_due(), b2a.next_due()) if d is not None]
            wait = min(dues + [deadline]) - now
            events = poller.poll(max(0, int(wait * 1000.0 + 0.999)))
            now = time.monotonic()
            for fd, _ev in events:
                if fd == 0:
                    if not os.read(0, 4096):
                        return a2b, b2a
                    continue
                dirs[fd].pull(now + delay)
            a2b.push(now)
            b2a.push(now)
    except Stop:
        pass
    return a2b, b2a


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('ns_a')
    p.add_argument('dev_a')
    p.add_argument('ns_b')
    p.add_argument('dev_b')
    p.add_argument('--delay-ms', type=float, default=10.0, help='one-way delay')
    p.add_argument('--max-seconds', type=float, default=900.0)
    p.add_argument('--queue', type=int, default=4096, help='packets held per direction at most')
    a = p.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        setns(a.ns_a)
        fa = open_tun(a.dev_a)
        setns(a.ns_b)
        fb = open_tun(a.dev_b)
    except Stop:
        return 1
    print('ready', flush=True)
    a2b, b2a = relay(fa, fb, a.delay_ms / 1000.0, a.max_seconds, a.queue)
    sys.stderr.write(json.dumps({'a->b': a2b.report(), 'b->a': b2a.report()}) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
