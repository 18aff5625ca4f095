# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the data mover against its peers on the same image, printed as a table of ratios.

    PYTHONPATH=<dir above ansible_collections> .venv/bin/python tests/bench/bench_mover.py [--size-mib 1024] [--dir D]
        [--repeat 3] [--workers 2]

Every tool (mover case or peer) runs --repeat times on the same data and the best time is reported; the tools of one
comparison run round-robin, so a burst of load from other jobs hits all of them alike. Before each run the target is
reset to the same starting state (outside the timing) and `sync` empties the dirty page cache, so no run pays for the
previous one's write-back. Each mover case runs in a child process (so peak RSS is per case; a
child receiver reports its own). Nothing here is asserted. See tests/bench/README.md and docs/performance.md.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cpu_floor  # noqa: E402  pylint: disable=wrong-import-position


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
    """Guest-like writes: one 64 KiB write at a random place in `fraction` of the 1 MiB blocks."""
    rnd = random.Random(seed)
    blocks = size // MIB
    changed = []
    with open(path, 'r+b') as f:
        for b in rnd.sample(range(blocks), max(1, int(blocks * fraction))):
            off = b * MIB + rnd.randrange(0, MIB - 65536) // 4096 * 4096
            f.seek(off)
            f.write(os.urandom(65536))
            changed.append((off, 65536))
    return changed


def remove(*paths):
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


def clone(src, dst):
    """Sparse copy of a file or a state directory (the reset before a run; not timed)."""
    remove(dst)
    subprocess.check_call(['cp', '-a', '--sparse=always', src, dst])


def best_of_group(repeat, tools):
    """Best of `repeat` runs of each (name, prepare, run) of `tools`: prepare() (not timed), sync, run() -> (seconds,
    extra). The tools run round-robin (1, 2, ..., 1, 2, ...) so that a burst of load from other jobs on the shared
    machine hits every tool of a comparison alike. Returns {name: (best seconds, extra of that run, median
    seconds)}: the median is printed next to the best, as one fast outlier of a peer can decide a ratio of bests."""
    best, times = {}, {}
    for _rep in range(repeat):
        for name, prepare, run in tools:
            prepare()
            os.sync()
            res = run()
            times.setdefault(name, []).append(res[0])
            if name not in best or res[0] < best[name][0]:
                best[name] = res
    return dict((name, (secs, extra, statistics.median(times[name]))) for name, (secs, extra) in best.items())


def timed(cmd):
    t = time.monotonic()
    subprocess.check_call(cmd, stdout=subprocess.DEVNULL)
    return time.monotonic() - t, None


def run_case(args_json):
    """Child process: one replicate_disk call, prints JSON {seconds, stats, pid}."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec
    a = json.loads(args_json)
    if a.pop('pipe', False):
        a['receiver'] = ReceiverSpec()
    t = time.monotonic()
    r = replicate_disk(**a)
    secs = time.monotonic() - t
    print(json.dumps({'seconds': secs, 'stats': r.stats, 'pid': os.getpid()}))


def mover(**kw):
    out = subprocess.check_output([sys.executable, __file__, '--case', json.dumps(kw)])
    res = json.loads(out.decode().strip().splitlines()[-1])
    return res['seconds'], res['stats']


def plain_read(path):
    t = time.monotonic()
    buf = bytearray(MIB)
    with open(path, 'rb', buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.monotonic() - t, None


def _cpu_line(st):
    cpu = st.get('cpu') or {}
    rx = (st.get('receiver') or {}).get('cpu') or {}
    parts = ['%s %.2f' % (k, v) for k, v in sorted(cpu.items()) if v >= 0.005]
    parts += ['receiver %s %.2f' % (k, v) for k, v in sorted(rx.items()) if v >= 0.005]
    return ', '.join(parts)


def _thread_cpu(st):
    """CPU seconds of the copy threads: sender workers + emitter, receiver apply + wire reader."""
    cpu = st.get('cpu') or {}
    rx = (st.get('receiver') or {}).get('cpu') or {}
    return sum(cpu.get(k, 0.0) for k in ('workers', 'emit')) + sum(rx.get(k, 0.0) for k in ('apply', 'wire_read'))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size-mib', type=int, default=1024)
    p.add_argument('--dir', default=None)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--case')
    a = p.parse_args()
    if a.case:
        return run_case(a.case)
    size = a.size_mib * MIB
    work = tempfile.mkdtemp(prefix='rvbench', dir=a.dir)
    n = a.repeat
    rows = []

    def path(name):
        return os.path.join(work, name)
    try:
        src = path('src.img')
        make_image(src, size)
        plain_read(src)     # warm the page cache the same way for every tool

        def empty_target(name):
            def prepare():
                remove(path(name))
                with open(path(name), 'wb') as f:
                    f.truncate(size)
            return prepare

        # full copies: every peer and both mover cases round-robin
        tools = []
        if shutil.which('nbdcopy'):
            tools.append(('nbdcopy', empty_target('nbd.img'), lambda: timed(['nbdcopy', src, path('nbd.img')])))
            tools.append(('nbdcopy --flush', empty_target('nbd.img'),
                          lambda: timed(['nbdcopy', '--flush', src, path('nbd.img')])))
        if shutil.which('qemu-img'):
            qemu = ['qemu-img', 'convert', '-f', 'raw', '-O', 'raw']
            tools.append(('qemu-img convert', lambda: remove(path('q.img')), lambda: timed(qemu + [src, path('q.img')])))
            tools.append(('qemu-img convert -t writeback', lambda: remove(path('q.img')),
                          lambda: timed(qemu + ['-t', 'writeback', src, path('q.img')])))
        dst = path('dst.img')
        dst2 = path('dst2.img')
        tools.append(('mover full', lambda: remove(dst, dst + '.replicator'),
                      lambda: mover(source=src, target=dst, plan_kind='full', create_target=True, workers=a.workers,
                                    change_id='b1')))
        tools.append(('mover zstd', lambda: remove(dst2, dst2 + '.replicator'),
                      lambda: mover(source=src, target=dst2, plan_kind='full', create_target=True, workers=a.workers,
                                    compress_level=1, pipe=True, change_id='z1')))
        peers = best_of_group(n, tools)
        remove(path('nbd.img'), path('q.img'), dst2, dst2 + '.replicator')
        full, zstd = peers.pop('mover full'), peers.pop('mover zstd')
        for peer in ('nbdcopy --flush', 'nbdcopy', 'qemu-img convert -t writeback', 'qemu-img convert'):
            if peer in peers:
                rows.append(('full, local, no compression', full, peer, peers[peer]))
        for peer in ('nbdcopy --flush', 'nbdcopy'):
            if peer in peers:
                rows.append(('full, zstd-1, wire to child receiver', zstd, peer, peers[peer]))
        floor = cpu_floor.measure(src, work, repeat=n)
        clone(dst, path('base.img'))
        clone(dst + '.replicator', path('base.img.replicator'))

        # 2% incremental: CBT plan vs rsync, both starting from the pre-change replica every run
        clone(src, path('rsync-base.img'))
        changed = change_fraction(src, size, 0.02)
        plain_read(src)

        def reset_dst():
            clone(path('base.img'), dst)
            clone(path('base.img.replicator'), dst + '.replicator')
        tools = [('cbt', reset_dst, lambda: mover(source=src, target=dst, plan_kind='cbt', cbt_extents=changed,
                                                  workers=a.workers, change_id='b2')),
                 ('cbt pipe', reset_dst, lambda: mover(source=src, target=dst, plan_kind='cbt', cbt_extents=changed,
                                                       workers=a.workers, change_id='b2', compress_level=1, pipe=True))]
        if shutil.which('rsync'):
            tools.append(('rsync', lambda: clone(path('rsync-base.img'), path('rsync.img')),
                          lambda: timed(['rsync', '--inplace', '--no-whole-file', '--ignore-times', src,
                                         path('rsync.img')])))
        res = best_of_group(n, tools)
        cbt, cbt_pipe = res['cbt'], res['cbt pipe']
        if 'rsync' in res:
            rsync = res['rsync']
            name = '2%% CBT incremental (%d x 64 KiB)' % len(changed)
            rows.append((name, cbt, 'rsync --inplace --no-whole-file -I', rsync))
            rows.append((name + ', zstd-1 wire', cbt_pipe, 'rsync --inplace --no-whole-file -I', rsync))
        remove(path('rsync.img'), path('rsync-base.img'))
        clone(dst, path('base.img'))        # the replica after the CBT cycle
        clone(dst + '.replicator', path('base.img.replicator'))

        change_fraction(src, size, 0.02, seed=9)
        res = best_of_group(n, [('read', lambda: None, lambda: plain_read(src)),
                                ('digests', reset_dst, lambda: mover(source=src, target=dst, plan_kind='digests',
                                                                     workers=a.workers, change_id='b3'))])
        read, dig = res['read'], res['digests']
        rows.append(('digest incremental (2% changed)', dig, 'plain sequential read', read))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print('image: %d MiB (~50%% holes, ~25%% compressible, ~25%% random), workers=%d, cpus=%d, best of %d'
          % (a.size_mib, a.workers, os.cpu_count(), n))
    print('%-44s %8s  %-36s %8s  %10s  %7s  %7s  %10s' % ('case', 'mover s', 'peer', 'peer s', 'peer/mover', 'snd MiB',
                                                          'rcv MiB', 'of medians'))
    for name, (t, st, tm), peer, (tp, _x, tpm) in rows:
        rx = st.get('receiver') or {}
        print('%-44s %8.3f  %-36s %8.3f  %9.2fx  %7.0f  %7.0f  %9.2fx' % (
            name, t, peer, tp, tp / t, st['peak_rss_bytes'] / MIB, rx.get('peak_rss_bytes', 0) / MIB, tpm / tm))
    print()
    zstd_st = zstd[1]
    print('CPU floor of a zstd-1 cycle (one thread, no pipeline; cpu_floor.py), %d data blocks: %s; sum %.3f CPU s '
          '(/ 2 cores = %.3f s); nbdcopy\'s share (read + write) %.3f CPU s; the zstd case used %.3f CPU s in its '
          'threads for a %.3f s copy stage' % (
              floor['blocks'], ', '.join('%s %.3f' % (k, floor['stages'][k]) for k in cpu_floor.STAGES),
              floor['mover'], floor['mover'] / 2, floor['nbdcopy_share'], _thread_cpu(zstd_st),
              zstd_st['durations']['copy_seconds']))
    print()
    seen = set()
    for name, (t, st, _tm), _peer, _tp in rows:
        if name in seen:
            continue
        seen.add(name)
        keys = ('bytes_planned', 'bytes_read', 'bytes_zero', 'bytes_data', 'bytes_compressed', 'bytes_sent',
                'bytes_written', 'bytes_unchanged', 'bytes_deduplicated', 'blocks_sent_raw')
        print('%s: %s' % (name, ', '.join('%s=%d' % (k, st.get(k, 0)) for k in keys)))
        durations = sorted(st['durations'].items())
        print('    durations: %s' % ', '.join('%s %.3f' % (k.replace('_seconds', ''), v) for k, v in durations))
        print('    cpu seconds: %s' % _cpu_line(st))


if __name__ == '__main__':
    main()
