# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the data mover against its peers on the same image, printed as a table of ratios.

    PYTHONPATH=<dir above ansible_collections> .venv/bin/python tests/bench/bench_mover.py [--size-mib 1024] [--dir D]

Each mover case runs in a child process (so peak RSS is per case). Timings are wall clock on whatever machine runs
it; nothing here is asserted. See tests/bench/README.md and docs/performance.md.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def make_image(path, size, seed=7):
    """Realistic mix per 1 MiB block: ~50% holes, ~25% compressible text-like data, ~25% random."""
    rnd = random.Random(seed)
    with open(path, 'wb') as f:
        f.truncate(size)
        for off in range(0, size, MIB):
            r = rnd.random()
            if r < 0.5:
                continue
            f.seek(off)
            if r < 0.75:
                words = b' '.join(rnd.choice((b'alpha', b'bravo', b'charlie', b'delta', b'echo', b'foxtrot',
                                              b'%d' % off)) for _word in range(4000))
                f.write((words * (MIB // len(words) + 1))[:MIB])
            else:
                f.write(os.urandom(MIB))


def change_fraction(path, size, fraction, seed=8):
    rnd = random.Random(seed)
    blocks = size // MIB
    changed = []
    with open(path, 'r+b') as f:
        for b in rnd.sample(range(blocks), max(1, int(blocks * fraction))):
            off = b * MIB + rnd.randrange(0, MIB - 65536)
            f.seek(off)
            f.write(os.urandom(65536))
            changed.append((off, 65536))
    return changed


def timed(cmd):
    t = time.monotonic()
    subprocess.check_call(cmd, stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def run_case(args_json):
    """Child process: one replicate_disk call, prints JSON {seconds, stats}."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover import replicate_disk
    from ansible_collections.replicator.vsphere.plugins.module_utils.ssh_transport import ReceiverSpec
    a = json.loads(args_json)
    if a.pop('pipe', False):
        a['receiver'] = ReceiverSpec()
    t = time.monotonic()
    r = replicate_disk(**a)
    secs = time.monotonic() - t
    r.stats['peak_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({'seconds': secs, 'stats': r.stats}))


def mover(**kw):
    out = subprocess.check_output([sys.executable, __file__, '--case', json.dumps(kw)])
    res = json.loads(out.decode().strip().splitlines()[-1])
    # a child receiver's RSS is not in the sender's figure: pipe cases report the sender only
    return res['seconds'], res['stats']


def plain_read(path):
    t = time.monotonic()
    buf = bytearray(MIB)
    with open(path, 'rb', buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.monotonic() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size-mib', type=int, default=1024)
    p.add_argument('--dir', default=None)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--case')
    a = p.parse_args()
    if a.case:
        return run_case(a.case)
    size = a.size_mib * MIB
    work = tempfile.mkdtemp(prefix='rvbench', dir=a.dir)
    rows = []
    try:
        src = os.path.join(work, 'src.img')
        make_image(src, size)
        plain_read(src)     # warm the page cache the same way for every tool

        def fresh(name):
            path = os.path.join(work, name)
            for x in (path, path + '.replicator'):
                if os.path.isdir(x):
                    shutil.rmtree(x)
                elif os.path.exists(x):
                    os.unlink(x)
            return path

        t_nbdcopy = None
        if shutil.which('nbdcopy'):
            dst = fresh('nbdcopy.img')
            with open(dst, 'wb') as f:
                f.truncate(size)
            t_nbdcopy = timed(['nbdcopy', src, dst])
            fresh('nbdcopy.img')
        t_qemu = None
        if shutil.which('qemu-img'):
            t_qemu = timed(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw', src, fresh('qemu.img')])
            fresh('qemu.img')

        dst = fresh('dst.img')
        t_full, s_full = mover(source=src, target=dst, plan_kind='full', create_target=True, workers=a.workers,
                               change_id='b1')
        rows.append(('full, local, no compression', t_full, 'nbdcopy', t_nbdcopy, s_full))
        rows.append(('full, local, no compression', t_full, 'qemu-img convert', t_qemu, s_full))
        print('full copy durations: %s' % json.dumps(s_full['durations']))

        dst2 = fresh('dst2.img')
        t_z, s_z = mover(source=src, target=dst2, plan_kind='full', create_target=True, workers=a.workers,
                         compress_level=1, pipe=True, change_id='z1')
        rows.append(('full, zstd-1, wire to child receiver', t_z, 'nbdcopy', t_nbdcopy, s_z))
        fresh('dst2.img')

        # 2% incremental: CBT plan vs rsync on the same change
        rs = fresh('rsync.img')
        subprocess.check_call(['cp', '--sparse=always', src, rs])
        changed = change_fraction(src, size, 0.02)
        plain_read(src)
        t_rsync = None
        if shutil.which('rsync'):
            t_rsync = timed(['rsync', '--inplace', '--no-whole-file', '--ignore-times', src, rs])
        t_cbt, s_cbt = mover(source=src, target=dst, plan_kind='cbt', cbt_extents=changed, workers=a.workers,
                             change_id='b2')
        rows.append(('2%% CBT incremental (%d areas)' % len(changed), t_cbt, 'rsync --inplace --no-whole-file -I',
                     t_rsync, s_cbt))

        change_fraction(src, size, 0.02, seed=9)
        t_read = plain_read(src)
        t_dig, s_dig = mover(source=src, target=dst, plan_kind='digests', workers=a.workers, change_id='b3')
        rows.append(('digest incremental (2% changed)', t_dig, 'plain sequential read', t_read, s_dig))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print('image: %d MiB (~50%% holes, ~25%% compressible, ~25%% random), workers=%d, cpus=%d'
          % (a.size_mib, a.workers, os.cpu_count()))
    print('%-40s %9s  %-32s %9s  %13s  %8s  %9s' % ('case', 'mover s', 'peer', 'peer s', 'peer/mover', 'MB/s',
                                                    'RSS MiB'))
    for name, t, peer, tp, st in rows:
        ratio = ('%.2fx' % (tp / t)) if tp else 'n/a'
        print('%-40s %9.3f  %-32s %9s  %13s  %8.0f  %9.0f' % (
            name, t, peer, '%.3f' % tp if tp else 'n/a', ratio, st['bytes_planned'] / t / 1e6,
            st['peak_rss_bytes'] / MIB))
    print()
    for name, _t, _p, _tp, st in rows[1:2] + rows[2:]:
        keys = ('bytes_planned', 'bytes_read', 'bytes_zero', 'bytes_data', 'bytes_compressed', 'bytes_sent',
                'bytes_written', 'bytes_unchanged', 'bytes_deduplicated')
        print('%s: %s' % (name, ', '.join('%s=%d' % (k, st.get(k, 0)) for k in keys)))


if __name__ == '__main__':
    main()
