# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real NBD servers for the NBD client tests: nbdkit and qemu-nbd on unix sockets or 127.0.0.1 free ports.
Every server started here is stopped by its PID at teardown."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from integration_servers import free_port

START_TIMEOUT = 15.0


def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip('%s is not installed (apt-get install nbdkit qemu-utils libnbd-bin)' % tool)


def _wait_connectable(family, address, alive, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError('NBD server exited during start-up')
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(address)
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise RuntimeError('NBD server did not listen on %r within %ss' % (address, timeout))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class NbdServer(object):
    """A running server: uri, pid, kind; stop() ends it by PID."""

    def __init__(self, uri, pid, proc=None, socket_path=None, log=None):
        self.uri = uri
        self.pid = pid
        self.proc = proc
        self.socket_path = socket_path
        self.log = log

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            return
        if not _pid_alive(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)


class ServerFactory(object):
    def __init__(self):
        self.servers = []
        self.dir = tempfile.mkdtemp(prefix='nbdt', dir='/tmp')  # short: unix socket paths are limited to 107 bytes
        self.count = 0

    def _sock(self):
        self.count += 1
        return os.path.join(self.dir, 's%d' % self.count)

    def nbdkit(self, plugin_args, filters=(), tcp=False, readonly=False, extra=(), export=''):
        """nbdkit in the foreground (-f) on a unix socket, or on 127.0.0.1:<free port> when tcp."""
        _need('nbdkit')
        cmd = ['nbdkit', '-f', '--exit-with-parent']
        for f in filters:
            cmd.append('--filter=%s' % f)
        if readonly:
            cmd.append('-r')
        cmd.extend(extra)
        if tcp:
            port = free_port()
            cmd.extend(['-i', '127.0.0.1', '-p', str(port)])
            uri = 'nbd://127.0.0.1:%d/%s' % (port, export)
            family, address, path = socket.AF_INET, ('127.0.0.1', port), None
        else:
            path = self._sock()
            cmd.extend(['-U', path])
            uri = 'nbd+unix:///%s?socket=%s' % (export, path)
            family, address = socket.AF_UNIX, path
        cmd.extend(plugin_args)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        server = NbdServer(uri, proc.pid, proc=proc, socket_path=path)
        self.servers.append(server)
        _wait_connectable(family, address, lambda: proc.poll() is None)
        return server

    def qemu_nbd(self, image, fmt='raw', readonly=False, export=None):
        """qemu-nbd --fork on a unix socket, persistent, several clients allowed."""
        _need('qemu-nbd')
        path = self._sock()
        pidfile = path + '.pid'
        cmd = ['qemu-nbd', '--fork', '--pid-file', pidfile, '-t', '-e', '8', '-k', path, '-f', fmt]
        if readonly:
            cmd.append('-r')
        if export is not None:
            cmd.extend(['-x', export])
        cmd.append(image)
        subprocess.run(cmd, check=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        server = NbdServer('nbd+unix:///%s?socket=%s' % (export or '', path), pid, socket_path=path)
        self.servers.append(server)
        _wait_connectable(socket.AF_UNIX, path, lambda: _pid_alive(pid))
        return server

    def stop_all(self):
        for server in reversed(self.servers):
            server.stop()
        self.servers = []
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nbd_servers():
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


def _run_tool(args, timeout=120):
    _need(args[0])
    return subprocess.run(args, check=True, timeout=timeout, stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL).stdout.decode()


@pytest.fixture
def run_tool():
    """Run an NBD tool (nbdinfo, nbdcopy, qemu-img, qemu-io), skipping when it is absent; returns stdout text."""
    return _run_tool


def _zero_runs(extents):
    runs = []
    for off, length, zero in extents:
        if runs and runs[-1][2] == zero and runs[-1][0] + runs[-1][1] == off:
            runs[-1] = (runs[-1][0], runs[-1][1] + length, zero)
        else:
            runs.append((off, length, zero))
    return runs


@pytest.fixture
def nbdinfo_map():
    """nbdinfo --map of a URI as coalesced (offset, length, reads_as_zero) runs."""
    def mapper(uri):
        entries = json.loads(_run_tool(['nbdinfo', '--map', '--json', uri]))
        return _zero_runs([(e['offset'], e['length'], bool(e['type'] & 2)) for e in entries])
    return mapper


@pytest.fixture
def zero_runs():
    return _zero_runs
