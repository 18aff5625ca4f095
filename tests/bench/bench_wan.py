# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data mover over a WAN-like link: two network namespaces, latency from a relay, a tbf rate limit, SSH.

    sudo PYTHONPATH=<dir above ansible_collections> .venv/bin/python tests/bench/bench_wan.py [--size-mib 256]
        [--rates 100,1000] [--delay-ms 10] [--mtu 9000] [--rounds 1] [--dir D]

Needs root for the namespaces, the TUN devices and tc (netns.py, delay_relay.py); the mover, rsync and sshd are
the ordinary ones. sshd (throwaway keys in a temp dir) listens in namespace b; the sender runs in namespace a and
starts the receiver in b over SSH, as disk_replicate does with `receiver:`. Per link rate: a plain TCP check of the
link, full cycles and a 5% incremental (CBT extents) with compression off / zstd-1 / zstd-3, `rsync -z --inplace`
over the same SSH for the full and the incremental, a second image cloned from the first (plus a few % changed)
replicated with dedupe against the first VM's replica on and off, and a full cycle with bandwidth_limit at half the
link. Bytes on the wire come from the TUN devices' counters (IP packets both ways: SSH, TCP and IP overhead
included), next to the mover's own `bytes_sent`. Prints markdown tables; nothing is asserted. See
tests/bench/README.md and docs/performance.md ("WAN").
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from netns import ADDR_B, WanLink, stop_pid  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1024 * 1024
CASE_TIMEOUT = 600
SAMPLE_SECONDS = 0.2
WORDS = (b'alpha', b'bravo', b'charlie', b'delta', b'echo', b'foxtrot', b'golf', b'hotel')


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def text_block(rnd, n, tag):
    words = b' '.join(rnd.choice(WORDS + (tag,)) for _word in range(4000))
    return (words * (n // len(words) + 1))[:n]


def make_image(path, size, seed=7):
    """Per 1 MiB block: ~50% holes, ~25% compressible text-like data, ~25% random (as bench_mover.py)."""
    rnd = random.Random(seed)
    with open(path, 'wb') as f:
        f.truncate(size)
        for off in range(0, size, MIB):
            r = rnd.random()
            if r < 0.5:
                continue
            f.seek(off)
            f.write(text_block(rnd, MIB, b'%d' % off) if r < 0.75 else rnd.randbytes(MIB))


def guest_writes(path, size, fraction, seed):
    """`fraction` of the disk rewritten in 64 KiB guest writes at random 64 KiB-aligned places (no overlaps), half
    of them text, half random. Returns the (offset, length) extents, as CBT would report them."""
    rnd = random.Random(seed)
    chunk = 65536
    count = max(1, int(size * fraction) // chunk)
    extents = []
    with open(path, 'r+b') as f:
        for i, slot in enumerate(sorted(rnd.sample(range(size // chunk), count))):
            off = slot * chunk
            f.seek(off)
            f.write(text_block(rnd, chunk, b'w%d' % i) if i % 2 else rnd.randbytes(chunk))
            extents.append((off, chunk))
    return extents


def steady_rate(samples, base, total):
    """Mbit/s between the moments 10% and 90% of `total` bytes had passed (linear between samples); None when
    the transfer was too short for two samples in that window."""
    def when(goal):
        prev = None
        for t, n in samples:
            n -= base
            if n >= goal:
                if prev is None or n == prev[1]:
                    return t
                return prev[0] + (t - prev[0]) * (goal - prev[1]) / float(n - prev[1])
            prev = (t, n)
        return None
    t1, t2 = when(total * 0.1), when(total * 0.9)
    if t1 is None or t2 is None or t2 - t1 < 2 * SAMPLE_SECONDS:
        return None
    return total * 0.8 * 8 / (t2 - t1) / 1e6


def copy(src, dst):
    """Sparse copy of a file or a replica store directory (resets before a case; not timed)."""
    remove(dst)
    subprocess.check_call(['cp', '-a', '--sparse=always', src, dst])


def remove(*paths):
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


class BenchError(Exception):
    """A case did not do what it stands for in the tables: the run fails instead of printing it."""


def rsync_argv(ssh_argv, src, dst):
    """The rsync peer. -I (--ignore-times): the base copy keeps the original's mtime (cp -a) and the guest writes land
    within the same second, so without it rsync's quick check (size + mtime) skips the file and the "incremental"
    moves nothing (0.63 s, 0.0 MB on the wire in one run). bench_mover.py does the same."""
    return ['rsync', '-z', '-I', '--inplace'] + (['-e', ' '.join(ssh_argv)] if ssh_argv else []) + [src, dst]


# a case that stands for a change must put at least this share of the changed bytes on the wire (a->b): zstd-1 and
# rsync -z send 51-58% of them for these images (the random half does not compress); a peer that skipped the file
# moves only its handshake (a few KB)
MIN_WIRE_SHARE = 0.1


def check_moved(rows, changed):
    """Fail the run when a case moved (almost) no bytes for a change that has bytes. rows: (cycle, tool,
    (secs, stats, wire)); changed: {cycle: bytes the change holds}; cycles not in `changed` are not checked.
    Raises BenchError naming every such case; returns the number of rows checked."""
    bad = []
    checked = 0
    for cycle, tool, (_secs, _st, wire) in rows:
        need = changed.get(cycle)
        if not need:
            continue
        checked += 1
        if wire.get('a_tx', 0) < need * MIN_WIRE_SHARE:
            bad.append('%s / %s: %.3f MB on the wire a->b for a change of %.1f MB' % (
                cycle, tool, wire.get('a_tx', 0) / 1e6, need / 1e6))
    if bad:
        raise BenchError('peer(s) moved no bytes for a change that has bytes (the table would compare against a '
                         'peer that did nothing): %s' % '; '.join(bad))
    return checked


class Ssh(object):
    """sshd in namespace b on ADDR_B:22, key-only, keys and config in `tmp`; argv() is the client command."""

    def __init__(self, link, tmp):
        self.tmp = tmp
        os.makedirs(tmp)
        host_key = os.path.join(tmp, 'host_key')
        self.user_key = os.path.join(tmp, 'user_key')
        for k in (host_key, self.user_key):
            subprocess.check_call(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k])
        auth = os.path.join(tmp, 'authorized_keys')
        shutil.copy(self.user_key + '.pub', auth)
        os.chmod(auth, 0o600)
        self.known_hosts = os.path.join(tmp, 'known_hosts')
        cfg = os.path.join(tmp, 'sshd_config')
        with open(cfg, 'w') as f:
            f.write('Port 22\nListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\nPidFile %s\nUsePAM no\n'
                    'StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n'
                    'PermitRootLogin prohibit-password\nLogLevel ERROR\n'
                    % (ADDR_B, host_key, auth, os.path.join(tmp, 'sshd.pid')))
        if not os.path.isdir('/run/sshd'):
            os.makedirs('/run/sshd', 0o755)     # privilege separation directory the Debian service creates
        self.log = os.path.join(tmp, 'sshd.log')
        self.proc = subprocess.Popen(link.exec_argv('b', ['/usr/sbin/sshd', '-D', '-f', cfg, '-E', self.log]))
        self.options = ['StrictHostKeyChecking=no', 'UserKnownHostsFile=%s' % self.known_hosts,
                        'Ciphers=aes128-gcm@openssh.com']
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run(link.exec_argv('a', self.argv() + [ADDR_B, 'true']), capture_output=True,
                                   timeout=30, check=False)
            if probe.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError('sshd in the namespace does not answer: %s' % open(self.log).read())

    def argv(self):
        cmd = ['ssh', '-T', '-F', 'none', '-o', 'BatchMode=yes', '-i', self.user_key, '-l', 'root']
        for opt in self.options:
            cmd += ['-o', opt]
        return cmd

    def spec(self):
        return {'host': ADDR_B, 'user': 'root', 'identity_file': self.user_key, 'options': self.options,
                'python': sys.executable, 'config_file': 'none'}

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            stop_pid(self.proc.pid)
        self.proc = None


def run_case(args_json):
    """Child process (in namespace a): one replicate_disk call to an SSH receiver, prints JSON {seconds, stats}."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import SshReceiverSpec
    a = json.loads(args_json)
    a['receiver'] = SshReceiverSpec(**a.pop('ssh'))
    t = time.monotonic()
    r = replicate_disk(**a)
    print(json.dumps({'seconds': time.monotonic() - t, 'stats': r.stats}))


def count_relay(log, argv):
    """Child process (--count-relay): run argv (the receiver) with our stdin copied into its stdin, counting the
    bytes with a timestamp every SAMPLE_SECONDS / 4; stdout and stderr are the receiver's own. At EOF writes
    [[t, bytes], ...] (time.monotonic()) as JSON to `log`."""
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, bufsize=0)
    fd_in, fd_out = sys.stdin.fileno(), child.stdin.fileno()
    total = 0
    samples = [(time.monotonic(), 0)]
    try:
        while True:
            chunk = os.read(fd_in, MIB)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view):]
            total += len(chunk)
            now = time.monotonic()
            if now - samples[-1][0] >= SAMPLE_SECONDS / 4:
                samples.append((now, total))
    except BrokenPipeError:
        pass
    samples.append((time.monotonic(), total))
    child.stdin.close()
    rc = child.wait()
    with open(log, 'w') as f:
        json.dump(samples, f)
    return rc


def local_limit(a):
    """--local-limit: the bandwidth limit on a pipe, no root: a full cycle without compression per rate (MB/s) to
    the local child receiver behind count_relay; the rate is the bytes through the pipe between 10% and 90% of them."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec

    class Counted(ReceiverSpec):
        def __init__(self, log):
            ReceiverSpec.__init__(self)
            self.log = log

        def argv(self):
            return [sys.executable, __file__, '--count-relay', self.log, '--'] + ReceiverSpec.argv(self)

    work = tempfile.mkdtemp(prefix='rvbench-limit', dir=a.dir)
    rows = []
    try:
        src = os.path.join(work, 'v1.img')
        make_image(src, a.size_mib * MIB)
        for limit in [float(x) for x in a.local_limit.split(',')]:
            dst = os.path.join(work, 'replica.img')
            remove(dst, dst + '.replicator')
            log = os.path.join(work, 'pipe.json')
            load = loadavg()
            r = replicate_disk(src, dst, 'full', receiver=Counted(log), create_target=True, compress_level=0,
                               change_id='limit', bandwidth_mbps=limit, workers=a.workers)
            with open(log) as f:
                samples = json.load(f)
            total = samples[-1][1]
            steady = (steady_rate(samples, 0, total) or 0) / 8.0
            whole = total / 1e6 / (samples[-1][0] - samples[0][0])
            st = r.stats
            got = st['bytes_sent'] / 1e6 / st['durations']['copy_seconds']
            rows.append((limit, load, total, steady, whole, got, st.get('throttle_seconds', 0)))
            print('limit %.2f MB/s: pipe steady %.2f MB/s (%+.1f%%)' % (limit, steady, (steady / limit - 1) * 100),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print('| bandwidth_limit MB/s | loadavg | MB through the pipe | steady MB/s (10%-90%) | vs asked | whole stream MB/s '
          '| mover bytes_sent / copy s | throttle waited s |')
    print('|---|---|---|---|---|---|---|---|')
    for limit, load, total, steady, whole, got, waited in rows:
        print('| %.2f | %s | %.1f | %.2f | %+.1f%% | %.2f | %.2f | %.1f |' % (
            limit, load, total / 1e6, steady, (steady / limit - 1) * 100, whole, got, waited))
    bad = [row for row in rows if abs(row[3] / row[0] - 1) > 0.05]
    return 1 if bad else 0


class Bench(object):
    def __init__(self, link, ssh, work, a):
        self.link = link
        self.ssh = ssh
        self.work = work
        self.a = a

    def path(self, name):
        return os.path.join(self.work, name)

    def wire(self, func):
        """Run func() -> (seconds, extra); returns (seconds, extra, wire): the link's byte counts during it, and
        `steady_mbit`, the a->b rate between 10% and 90% of those bytes (counters sampled every SAMPLE_SECONDS)."""
        samples = []
        stop = threading.Event()

        def sample():
            deadline = time.monotonic() + CASE_TIMEOUT
            while not stop.is_set() and time.monotonic() < deadline:
                t0 = time.monotonic()
                n = self.link.counters()['a_tx']
                samples.append(((t0 + time.monotonic()) / 2.0, n))     # the ip command takes a while under load
                stop.wait(SAMPLE_SECONDS)
        before = self.link.counters()
        thread = threading.Thread(target=sample, name='wire-sampler')
        thread.daemon = True
        thread.start()
        try:
            secs, extra = func()
        finally:
            stop.set()
            thread.join(10)
        after = self.link.counters()
        wire = dict((k, after[k] - before[k]) for k in after)
        samples.append((time.monotonic(), after['a_tx']))
        wire['steady_mbit'] = steady_rate(samples, before['a_tx'], wire['a_tx'])
        return secs, extra, wire

    def mover(self, **kw):
        kw.setdefault('workers', self.a.workers)
        kw['ssh'] = self.ssh.spec()

        def go():
            proc = subprocess.run(self.link.exec_argv('a', [sys.executable, __file__, '--case', json.dumps(kw)]),
                                  check=False, capture_output=True, timeout=CASE_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError('mover case failed: %s' % proc.stderr.decode(errors='replace')[-3000:])
            out = proc.stdout
            res = json.loads(out.decode().strip().splitlines()[-1])
            return res['seconds'], res['stats']
        return self.wire(go)

    def rsync(self, src, dst):
        def go():
            t = time.monotonic()
            proc = subprocess.run(self.link.exec_argv('a', rsync_argv(self.ssh.argv(), src, '%s:%s' % (ADDR_B, dst))),
                                  check=False, capture_output=True, timeout=CASE_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError('rsync failed: %s' % proc.stderr.decode(errors='replace')[-3000:])
            secs = time.monotonic() - t
            if subprocess.call(['cmp', '-s', src, dst]) != 0:      # not timed
                raise BenchError('rsync left %s different from %s: the peer did not do its work' % (dst, src))
            return secs, None
        return self.wire(go)

    def best(self, prepare, run):
        """Best (fastest) of --rounds runs; prepare() resets the target, not timed."""
        out = None
        for _r in range(self.a.rounds):
            prepare()
            os.sync()
            res = run()
            if out is None or res[0] < out[0]:
                out = res
        return out


def rate_rows(b, rate, images):
    """All cases at one link rate. Returns (rows, limit_row)."""
    a = b.a
    v1, v2, vm2 = images['v1'], images['v2'], images['vm2']
    extents = images['extents']
    dst = b.path('replica.img')
    store = dst + '.replicator'
    rows = []
    levels = (0, 1, 3)

    def fresh():
        remove(dst, store)

    for level in levels:
        res = b.best(fresh, lambda: b.mover(source=v1, target=dst, plan_kind='full', create_target=True,
                                            compress_level=level, change_id='full'))
        rows.append(('full', 'mover, %s' % ('no compression' if not level else 'zstd-%d' % level), res))
        if level == 0:
            copy(dst, b.path('base.img'))
            copy(store, b.path('base.img.replicator'))

    def reset():
        copy(b.path('base.img'), dst)
        copy(b.path('base.img.replicator'), store)

    for level in levels:
        res = b.best(reset, lambda: b.mover(source=v2, target=dst, plan_kind='cbt', cbt_extents=extents,
                                            compress_level=level, change_id='incr'))
        rows.append(('5% incremental', 'mover, %s' % ('no compression' if not level else 'zstd-%d' % level), res))

    if shutil.which('rsync') and not a.skip_rsync:
        rdst = b.path('rsync.img')
        rows.append(('full', 'rsync -z -I --inplace', b.best(lambda: remove(rdst), lambda: b.rsync(v1, rdst))))
        rows.append(('5% incremental', 'rsync -z -I --inplace',
                     b.best(lambda: copy(b.path('rsync-base.img'), rdst), lambda: b.rsync(v2, rdst))))
        remove(rdst)

    # second VM cloned from the same template: the first VM's replica (after the incremental) is on the target
    vm1 = b.path('vm1.img')
    copy(dst, vm1)
    copy(store, vm1 + '.replicator')
    dst2 = b.path('replica2.img')
    for dedupe in (False, True):
        sources = [{'target': vm1, 'state_dir': vm1 + '.replicator'}] if dedupe else []
        res = b.best(lambda: remove(dst2, dst2 + '.replicator'),
                     lambda: b.mover(source=vm2, target=dst2, plan_kind='full', create_target=True, compress_level=1,
                                     change_id='vm2', dedupe_sources=sources))
        rows.append(('2nd VM from the same template, full', 'mover, zstd-1, dedupe %s' % ('on' if dedupe else 'off'),
                     res))
    remove(dst2, dst2 + '.replicator', vm1, vm1 + '.replicator')
    check_moved(rows, {'full': images['data'], '5% incremental': sum(e[1] for e in extents)})

    # bandwidth_limit at half the link (MB/s, 10^6 bytes); no compression, so that the sender's CPU does not
    # decide the rate on a loaded machine (the unlimited no-compression full shows what it can reach)
    limit = rate / 8.0 * a.limit_fraction
    res = b.best(fresh, lambda: b.mover(source=v1, target=dst, plan_kind='full', create_target=True,
                                        compress_level=0, change_id='limit', bandwidth_mbps=limit))
    fresh()
    return rows, (limit, res)


def fmt_mb(n):
    return '%.1f' % (n / 1e6)


def print_tables(results, a, info):
    print()
    print('image: %d MiB (~50%% holes, ~25%% text, ~25%% random: %.0f MB of data), incremental: %.0f%% of the disk '
          'in 64 KiB writes (%.1f MB), 2nd VM: copy of the image + %.0f%% changed; one-way delay %.0f ms '
          '(TCP echo RTT %s ms), TUN MTU %d, workers %d, best of %d; ssh cipher aes128-gcm'
          % (a.size_mib, info['data'] / 1e6, a.change * 100, info['changed'] / 1e6, a.clone_change * 100,
             a.delay_ms, info['rtt'], a.mtu, a.workers, a.rounds))
    for rate, r in results:
        print()
        print('### %d Mbit/s (tbf; plain TCP a->b measured %.0f Mbit/s), loadavg at start %s'
              % (rate, r['tcp'], r['load']))
        print()
        print('| cycle | tool | s | connect s | MB on the wire a->b | MB b->a | mover bytes_sent MB | a->b Mbit/s (whole / '
              'steady) | data MB | dedup MB |')
        print('|---|---|---|---|---|---|---|---|---|---|')
        for cycle, tool, (secs, st, wire) in r['rows']:
            st = st or {}
            steady = wire.get('steady_mbit')
            print('| %s | %s | %.2f | %s | %s | %.2f | %s | %.0f / %s | %s | %s |' % (
                cycle, tool, secs, '%.2f' % st['durations']['connect_seconds'] if st else '-', fmt_mb(wire['a_tx']), wire['b_tx'] / 1e6,
                fmt_mb(st['bytes_sent']) if st else '-', wire['a_tx'] * 8 / secs / 1e6,
                '%.0f' % steady if steady else '-',
                fmt_mb(st['bytes_data']) if st else '-', fmt_mb(st['bytes_deduplicated']) if st else '-'))
        limit, (secs, st, wire) = r['limit']
        copy_s = st['durations']['copy_seconds']
        got = st['bytes_sent'] / copy_s / 1e6
        on_wire = wire['a_tx'] / secs / 1e6
        steady = (wire.get('steady_mbit') or 0) / 8.0
        print()
        reach = (r['rows'][0][2][2].get('steady_mbit') or 0) / 8.0
        if reach and reach < limit:
            print()
            print('(the unlimited full without compression reached only %.1f MB/s steady here: the limit below is '
                  'above what this machine delivered over this link)' % reach)
        print('bandwidth_limit %.2f MB/s (%.0f%% of the link), full without compression: on the wire a->b, steady (10%%-90%% of '
              'the bytes) **%.2f MB/s (%+.1f%% vs asked)**, SSH/TCP/IP overhead included; mover: %.1f MB sent in '
              '%.2f s of copy = %.2f MB/s (%+.1f%%; the bucket starts empty); whole cycle incl. connect and commit '
              '%.1f MB a->b in %.2f s = %.2f MB/s; throttle waited %.2f s'
              % (limit, a.limit_fraction * 100, steady, (steady / limit - 1) * 100, st['bytes_sent'] / 1e6, copy_s,
                 got, (got / limit - 1) * 100, wire['a_tx'] / 1e6, secs, on_wire, st.get('throttle_seconds', 0)))
    print()
    for rate, r in results:
        for cycle, tool, (secs, st, wire) in r['rows']:
            if st:
                d = st.get('durations', {})
                print('%d Mbit %s, %s: %s; bytes_compressed %d, blocks_sent_raw %d' % (
                    rate, cycle, tool, ', '.join('%s %.2f' % (k.replace('_seconds', ''), v) for k, v in sorted(d.items())),
                    st.get('bytes_compressed', 0), st.get('blocks_sent_raw', 0)))


def _interrupted(_sig, _frame):
    raise KeyboardInterrupt()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size-mib', type=int, default=256)
    p.add_argument('--rates', default='100,1000', help='link rates in Mbit/s (tbf), comma separated')
    p.add_argument('--delay-ms', type=float, default=10.0, help='one-way delay of the relay')
    p.add_argument('--mtu', type=int, default=9000, help='MTU of the TUN devices (the relay moves packets in Python)')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--rounds', type=int, default=1, help='runs per case, the best counts')
    p.add_argument('--change', type=float, default=0.05, help='share of the disk the incremental rewrites')
    p.add_argument('--clone-change', type=float, default=0.03, help='share of the 2nd VM that differs')
    p.add_argument('--limit-fraction', type=float, default=0.5, help='bandwidth_limit as a share of the link')
    p.add_argument('--skip-rsync', action='store_true')
    p.add_argument('--dir', default=None, help='work directory parent (default: $TMPDIR)')
    p.add_argument('--local-limit', metavar='MBPS[,MBPS]',
                   help='no root, no link: only the bandwidth_limit case at these rates (MB/s) over a pipe to the '
                        'local child receiver; exit status 1 when a steady rate is off by more than 5%%')
    p.add_argument('--case')
    if sys.argv[1:2] == ['--count-relay']:      # --count-relay LOG -- ARGV... (started by local_limit)
        return count_relay(sys.argv[2], sys.argv[4:])
    a = p.parse_args()
    if a.case:
        return run_case(a.case)
    if a.local_limit:
        return local_limit(a)
    if os.geteuid() != 0:
        print('bench_wan.py needs root (network namespaces, TUN devices, tc); run it with sudo', file=sys.stderr)
        return 2
    for tool in ('ip', 'tc', 'ssh', 'ssh-keygen'):
        if not shutil.which(tool):
            print('bench_wan.py needs %s' % tool, file=sys.stderr)
            return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):     # SIGINT too: a shell may start us with it ignored
        signal.signal(sig, _interrupted)
    started = time.monotonic()
    size = a.size_mib * MIB
    work = tempfile.mkdtemp(prefix='rvbench-wan', dir=a.dir)
    os.chmod(work, 0o755)
    results = []
    ssh = None
    info = {}
    try:
        v1 = os.path.join(work, 'v1.img')
        make_image(v1, size)
        info['data'] = int(subprocess.check_output(['du', '-B1', v1]).split()[0])
        v2 = os.path.join(work, 'v2.img')
        copy(v1, v2)
        extents = guest_writes(v2, size, a.change, seed=11)
        info['changed'] = sum(e[1] for e in extents)
        vm2 = os.path.join(work, 'vm2.img')
        copy(v2, vm2)
        guest_writes(vm2, size, a.clone_change, seed=12)
        copy(v1, os.path.join(work, 'rsync-base.img'))
        images = {'v1': v1, 'v2': v2, 'vm2': vm2, 'extents': extents, 'data': info['data']}
        with WanLink(prefix='rvbench', delay_ms=a.delay_ms, mtu=a.mtu) as link:
            ssh = Ssh(link, os.path.join(work, 'ssh'))
            info['rtt'] = '%.1f' % link.rtt_ms()
            bench = Bench(link, ssh, work, a)
            for rate in [int(x) for x in a.rates.split(',')]:
                link.set_rate(rate)
                r = {'load': loadavg(), 'tcp': link.tcp_rate(3.0)}
                print('%d Mbit/s: plain TCP %.0f Mbit/s, load %s' % (rate, r['tcp'], r['load']), flush=True)
                r['rows'], r['limit'] = rate_rows(bench, rate, images)
                results.append((rate, r))
            ssh.close()
        info['relay'] = link.relay_report
    finally:
        if ssh is not None:
            ssh.close()
        shutil.rmtree(work, ignore_errors=True)
    print_tables(results, a, info)
    print()
    print('relay: %s; bench total %.0f s' % (json.dumps(info.get('relay')), time.monotonic() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main())
