# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read throughput of NbdEndpoint (T threads x B-byte requests over one connection) against nbdcopy to null:.

Usage: PYTHONPATH=<dir above ansible_collections> python bench_nbd_read.py [size_mib] [threads] [block_kib]
Starts nbdkit (pattern plugin: all data; memory plugin: all holes) and qemu-nbd (sparse qcow2) on unix sockets,
prints MB/s for both readers and stops the servers. Figures only; nothing is asserted."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.nbd_client import NbdEndpoint


def our_read(uri, threads, block, skip_zero=False):
    """Read every block; with skip_zero only blocks that block status does not report as zeros (like nbdcopy)."""
    with NbdEndpoint(uri) as ep:
        size = ep.size
        start = time.monotonic()
        if skip_zero:
            todo = [(o, n) for o, n, z in ep.extents(0, size) if not z]
        else:
            todo = [(0, size)]
        blocks = [(o + i, min(block, o + n - (o + i))) for o, n in todo for i in range(0, n, block)]

        def worker(first):
            buf = bytearray(block)
            view = memoryview(buf)
            for off, n in blocks[first::threads]:
                ep.preadinto(off, view[:n])

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return size / (time.monotonic() - start) / 1e6


def nbdcopy_read(uri):
    start = time.monotonic()
    subprocess.run(['nbdcopy', uri, 'null:'], check=True, timeout=600)
    elapsed = time.monotonic() - start
    size = int(subprocess.run(['nbdinfo', '--size', uri], check=True, stdout=subprocess.PIPE).stdout)
    return size / elapsed / 1e6


def wait_socket(path):
    for _i in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError('server socket %s did not appear' % path)


def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    block = (int(sys.argv[3]) if len(sys.argv) > 3 else 1024) * 1024
    tmp = tempfile.mkdtemp(prefix='nbdb', dir='/tmp')
    procs = []
    qemu_pid = None
    try:
        cases = []
        for plugin in ('pattern', 'memory'):
            sock = os.path.join(tmp, plugin)
            procs.append(subprocess.Popen(['nbdkit', '-f', '--exit-with-parent', '-U', sock, plugin,
                                           '%dM' % size_mib]))
            wait_socket(sock)
            cases.append(('nbdkit %s (%s)' % (plugin, 'data' if plugin == 'pattern' else 'sparse'), sock))
        image = os.path.join(tmp, 'disk.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', image, '%dM' % size_mib], check=True)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 %dM' % (size_mib // 2), image], check=True,
                       stdout=subprocess.DEVNULL)
        sock = os.path.join(tmp, 'qemu')
        subprocess.run(['qemu-nbd', '--fork', '--pid-file', sock + '.pid', '-t', '-e', '4', '-k', sock, '-f',
                        'qcow2', image], check=True)
        with open(sock + '.pid') as f:
            qemu_pid = int(f.read())
        cases.append(('qemu-nbd qcow2 (half data)', sock))
        print('%d MiB export, our client: %d threads x %d KiB' % (size_mib, threads, block // 1024))
        for label, sock in cases:
            uri = 'nbd+unix:///?socket=%s' % sock
            ours = max(our_read(uri, threads, block) for _i in range(2))
            skip = max(our_read(uri, threads, block, skip_zero=True) for _i in range(2))
            theirs = max(nbdcopy_read(uri) for _i in range(2))
            print('%-28s ours %6.0f MB/s (ratio %.2f)  ours skipping zero extents %6.0f MB/s (ratio %.2f)  '
                  'nbdcopy %6.0f MB/s' % (label, ours, ours / theirs, skip, skip / theirs, theirs))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if qemu_pid:
            os.kill(qemu_pid, 15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
