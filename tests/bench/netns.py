# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A WAN link between two network namespaces for benchmarks (root only): TUN devices joined by delay_relay.py
(latency) with a tc tbf rate limit on both ends, addresses from 198.18.0.0/15 (the benchmarking range) inside the
namespaces only. Use as a context manager; everything it made (namespaces, relay, processes left in them) goes
away on exit, also on Ctrl-C. Packet and byte counters come from the devices (`ip -s link`)."""

from __future__ import absolute_import, division, print_function

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ADDR_A, ADDR_B = '198.18.0.1', '198.18.0.2'
STOP_TIMEOUT = 5.0

_TCP_SINK = r'''
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], 5201)); s.listen(1)
s.settimeout(30); c, _a = s.accept(); c.settimeout(30); n = 0; t0 = None; buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k:
        break
    if t0 is None:
        t0 = time.monotonic()
    n += k
print(n, time.monotonic() - (t0 or time.monotonic()))
'''

_TCP_SOURCE = r'''
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5201), 30); buf = b'x' * (1 << 20); end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    c.sendall(buf)
c.close()
'''


_TCP_ECHO = r'''
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], 5202)); s.listen(1)
s.settimeout(30); c, _a = s.accept(); c.settimeout(30); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    b = c.recv(1)
    if not b:
        break
    c.sendall(b)
'''

_TCP_PING = r'''
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5202), 30); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _i in range(int(sys.argv[2])):
    t = time.monotonic(); c.sendall(b'x'); c.recv(1); times.append(time.monotonic() - t)
c.close(); print(sorted(times)[len(times) // 2] * 1000.0)
'''


def run(*cmd, **kw):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=60, **kw).stdout


def stop_pid(pid, sig=signal.SIGTERM):
    """Signal one process we started and wait (bounded) until it is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid if not os.path.exists('/proc/%d' % pid) else 0
        if done:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class WanLink(object):
    """Namespaces `<prefix>_a` / `<prefix>_b`, devices `<prefix>ta` / `<prefix>tb` (TUN, MTU `mtu`) through the
    delay relay (`delay_ms` one way). set_rate(mbit) puts a tbf on both devices."""

    def __init__(self, prefix='rvbench', delay_ms=10.0, mtu=9000, max_seconds=1200):
        tag = '%s_%d' % (prefix, os.getpid())
        self.ns_a, self.ns_b = tag + '_a', tag + '_b'
        self.dev_a, self.dev_b = prefix + 'ta', prefix + 'tb'
        self.delay_ms = delay_ms
        self.mtu = mtu
        self.max_seconds = max_seconds
        self.relay = None
        self.relay_report = None
        self.rate_mbit = None
        self._made = []

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        for ns in (self.ns_a, self.ns_b):
            run('ip', 'netns', 'add', ns)
            self._made.append(ns)
            run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        self.relay = subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'delay_relay.py'), self.ns_a, self.dev_a, self.ns_b, self.dev_b,
             '--delay-ms', str(self.delay_ms), '--max-seconds', str(self.max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.relay.stdout.readline()
        if line.strip() != b'ready':
            raise RuntimeError('delay relay did not start: %s' % self.relay.stderr.read(4000).decode(errors='replace'))
        for ns, dev, mine, peer in ((self.ns_a, self.dev_a, ADDR_A, ADDR_B), (self.ns_b, self.dev_b, ADDR_B, ADDR_A)):
            run('ip', '-n', ns, 'link', 'set', 'dev', dev, 'mtu', str(self.mtu), 'up')
            run('ip', '-n', ns, 'addr', 'add', mine, 'peer', peer + '/32', 'dev', dev)

    def exec_argv(self, side, argv):
        """argv run inside namespace `side` ('a' or 'b')."""
        return ['ip', 'netns', 'exec', self.ns_a if side == 'a' else self.ns_b] + list(argv)

    def set_rate(self, mbit):
        """tbf on both devices: `mbit` Mbit/s, burst 4 ms of traffic (at least 2 packets), 50 ms of queue."""
        burst = max(2 * (self.mtu + 64), int(mbit * 1e6 / 8 * 0.004))
        for ns, dev in ((self.ns_a, self.dev_a), (self.ns_b, self.dev_b)):
            run('tc', '-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', '%dmbit' % mbit,
                'burst', str(burst), 'latency', '50ms')
        self.rate_mbit = mbit

    def counters(self):
        """{'a_tx': bytes, 'b_tx': bytes, 'a_tx_packets': n, ...}: what each end put on the link."""
        out = {}
        for side, ns, dev in (('a', self.ns_a, self.dev_a), ('b', self.ns_b, self.dev_b)):
            st = json.loads(run('ip', '-n', ns, '-s', '-j', 'link', 'show', 'dev', dev))[0]['stats64']
            out[side + '_tx'] = st['tx']['bytes']
            out[side + '_tx_packets'] = st['tx']['packets']
            out[side + '_tx_dropped'] = st['tx'].get('dropped', 0)
        return out

    def rtt_ms(self, count=5):
        """Round trip a -> b -> a of a 1-byte TCP echo (median of `count`, ms; there is no ping here)."""
        echo = subprocess.Popen(self.exec_argv('b', [sys.executable, '-c', _TCP_ECHO, ADDR_B]))
        try:
            time.sleep(0.3)
            out = run(*self.exec_argv('a', [sys.executable, '-c', _TCP_PING, ADDR_B, str(count)]))
            echo.wait(30)
        finally:
            if echo.poll() is None:
                stop_pid(echo.pid)
        return float(out.strip())

    def tcp_rate(self, seconds=3.0):
        """Plain TCP a -> b for `seconds`: Mbit/s as the receiver counted it."""
        sink = subprocess.Popen(self.exec_argv('b', [sys.executable, '-c', _TCP_SINK, ADDR_B]),
                                stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            subprocess.run(self.exec_argv('a', [sys.executable, '-c', _TCP_SOURCE, ADDR_B, str(seconds)]),
                           check=True, timeout=seconds + 60)
            out, _err = sink.communicate(timeout=60)
        finally:
            if sink.poll() is None:
                stop_pid(sink.pid)
        n, secs = out.split()
        return int(n) * 8 / float(secs) / 1e6

    def close(self):
        # processes still in the namespaces (sshd sessions of an interrupted run): all descendants of ours
        for ns in self._made:
            try:
                pids = run('ip', 'netns', 'pids', ns).split()
            except (subprocess.SubprocessError, OSError):
                pids = []
            for pid in pids:
                if self.relay is None or int(pid) != self.relay.pid:
                    stop_pid(int(pid))
        if self.relay is not None:
            try:
                self.relay.stdin.close()
            except OSError:
                pass
            try:
                self.relay.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_pid(self.relay.pid)
            try:
                self.relay_report = json.loads(self.relay.stderr.read().decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                self.relay_report = None
            self.relay = None
        while self._made:
            ns = self._made.pop()
            subprocess.run(['ip', 'netns', 'del', ns], check=False, capture_output=True, timeout=60)
