# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the data mover tests: test images, a throwaway sshd on 127.0.0.1 and NBD servers (stopped by PID)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from integration_servers import START_TIMEOUT, stop_pid

MIB = 1024 * 1024


def digest_file(path, length=None):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        left = length if length is not None else os.path.getsize(path)
        while left:
            chunk = f.read(min(left, 4 * MIB))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def make_image(path, size, seed=1, data_fraction=0.5):
    """Sparse image: random, compressible and zero blocks (deterministic per seed)."""
    rnd = random.Random(seed)
    with open(path, 'wb') as f:
        f.truncate(size)
        off = 0
        while off < size:
            n = min(rnd.choice((64 * 1024, 256 * 1024, MIB)), size - off)
            r = rnd.random()
            if r < data_fraction / 2:
                f.seek(off)
                f.write(rnd.getrandbits(8 * n).to_bytes(n, 'little'))
            elif r < data_fraction:
                f.seek(off)
                f.write(((b'replicator %d ' % off) * (n // 8 + 1))[:n])
            off += n
    return path


def patch(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


class Nbd(object):
    """nbdkit / qemu-nbd on unix sockets, stopped by PID."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.n = 0

    def _wait(self, proc, sock):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError('NBD server exited at start')
            if os.path.exists(sock):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(sock)
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.05)
        raise RuntimeError('NBD server did not start')

    def _start(self, argv, sock):
        proc = subprocess.Popen(argv)
        self.procs.append(proc)
        self._wait(proc, sock)
        return 'nbd+unix:///?socket=%s' % sock

    def sock(self):
        self.n += 1
        return os.path.join(self.tmp, 's%d' % self.n)

    def nbdkit(self, *plugin):
        if shutil.which('nbdkit') is None:
            pytest.skip('nbdkit not installed')
        s = self.sock()
        return self._start(['nbdkit', '-f', '--exit-with-parent', '-U', s] + list(plugin), s)

    def qemu_nbd(self, path, fmt='raw'):
        if shutil.which('qemu-nbd') is None:
            pytest.skip('qemu-nbd not installed')
        s = self.sock()
        return self._start(['qemu-nbd', '-k', s, '-f', fmt, '--cache=writeback', path], s)

    def stop(self):
        for p in self.procs:
            stop_pid(p)
