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
import sys
import time

import pytest

MIB = 1024 * 1024
START_TIMEOUT = 15.0


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


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def stop_pid(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Sshd(object):
    def __init__(self, tmp):
        self.dir = tmp
        self.port = free_port()
        key = os.path.join(tmp, 'host_key')
        self.user_key = os.path.join(tmp, 'user_key')
        for k in (key, self.user_key):
            subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k])
        auth = os.path.join(tmp, 'authorized_keys')
        shutil.copy(self.user_key + '.pub', auth)
        os.chmod(auth, 0o600)
        self.known_hosts = os.path.join(tmp, 'known_hosts')
        cfg = os.path.join(tmp, 'sshd_config')
        with open(cfg, 'w') as f:
            f.write('Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\n'
                    'UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n'
                    'PermitRootLogin prohibit-password\nLogLevel ERROR\n'
                    % (self.port, key, auth, os.path.join(tmp, 'sshd.pid')))
        self.log = os.path.join(tmp, 'sshd.log')
        if os.getuid() == 0 and not os.path.isdir('/run/sshd'):
            os.makedirs('/run/sshd', 0o755)     # privilege separation directory the Debian service normally creates
        self.proc = subprocess.Popen(['/usr/sbin/sshd', '-f', cfg, '-D', '-E', self.log])
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('sshd exited: %s' % open(self.log).read())
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        stop_pid(self.proc)
        raise RuntimeError('sshd did not listen')

    def spec(self, **kw):
        from ansible_collections.replicator.vsphere.plugins.module_utils.ssh_transport import SshReceiverSpec
        import getpass
        return SshReceiverSpec('127.0.0.1', user=getpass.getuser(), port=self.port, identity_file=self.user_key,
                               python=sys.executable, config_file='none',
                               options=['StrictHostKeyChecking=no', 'UserKnownHostsFile=%s' % self.known_hosts,
                                        'Ciphers=aes128-gcm@openssh.com'], **kw)


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
