# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the CPU of a zstd-1 cycle goes: by process (sender, receiver) and by kind of work, from a perf profile.

    PYTHONPATH=<acroot> .venv/bin/python tests/bench/cycle_profile.py SRC_IMAGE [--dir D] [--rounds 3] [--freq 2000]

Runs the bench's zstd-1 case (full plan, zstd level 1, the receiver a child process fed over a pipe as over SSH)
under `perf record -a -g` (system wide, call chains; needs the `perf` tool and root or a perf_event_paranoid that
allows it), once per round, each time onto a new target in --dir after `sync`. Every sample of the sender's and the
receiver's processes is put in one bucket, the first of this list found anywhere in its call chain: the system
calls of the data path (reading the source, the pipe, pwrite, splice, writev, write-behind, drop-behind, fallocate,
fsync), zstd, xxh3, page faults, locks and scheduling, mmap; a chain with none of those but the interpreter's
library is "interpreter". Samples from before the receiver process starts (the sender's own imports) are left out;
the receiver's CPU before its first pwrite (its start: interpreter, imports, HELLO) is printed apart.

The point is the split between work any data path with this design has to do (kernel copies, compression, digests)
and what the interpreter adds; see docs/performance.md, run L. Prints one table, CPU seconds per bucket as
"median (min-max)" over the rounds; --json prints the raw figures.
"""

from __future__ import absolute_import, division, print_function

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_mover  # noqa: E402  pylint: disable=wrong-import-position

BUCKETS = (
    ('preadv', 'read source'), ('pipe_read', 'read pipe'), ('pwrite', 'pwrite'), ('splice', 'splice'),
    ('writev', 'writev'), ('sync_file_range', 'write-behind'), ('fadvise', 'drop-behind'),
    ('fallocate', 'fallocate'), ('fsync', 'fsync'), ('ZSTD_', 'zstd'), ('HUF_', 'zstd'), ('FSE_', 'zstd'),
    ('HIST_', 'zstd'), ('XXH', 'xxh3'), ('exc_page_fault', 'page faults'), ('futex', 'locks, scheduling'),
    ('schedule', 'locks, scheduling'), ('mmap', 'mmap'), ('munmap', 'mmap'), ('libpython', 'interpreter'),
)
ORDER = tuple(collections.OrderedDict.fromkeys([name for key, name in BUCKETS] + ['other']))   # print order
Sample = collections.namedtuple('Sample', 'comm pid time chain')


def bucket(chain):
    for key, name in BUCKETS:
        if key in chain:
            return name
    return 'other'


def parse_samples(text):
    """perf script output (comm,pid,tid,time,ip,sym,dso with call chains) -> [Sample]."""
    samples = []
    head, chain = None, []
    for line in text.splitlines() + ['']:
        if not line.strip():
            if head is not None:
                samples.append(Sample(head[0], head[1], head[2], ' '.join(chain)))
            head, chain = None, []
        elif not line[0].isspace():
            fields = line.split()
            # "comm pid/tid time:" -- a comm may hold spaces, so count from the right
            pid = int(fields[-2].split('/')[0])
            head = (' '.join(fields[:-2]), pid, float(fields[-1].rstrip(':')))
        else:
            chain.append(line.strip())
    return samples


FORK = re.compile(r'PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)')


def descendants(task_events, pid):
    """Processes (not threads) started below pid, from `perf script --show-task-events` output."""
    children = collections.defaultdict(set)
    for match in FORK.finditer(task_events):
        child, parent = int(match.group(1)), int(match.group(2))
        if child != parent:
            children[parent].add(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.pop(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def split_cpu(samples, sender_pid, children, freq):
    """CPU seconds per process role and bucket, from the receiver's start on.

    The receiver is the sender's child process with the most samples (others are short-lived helpers)."""
    counts = collections.Counter(s.pid for s in samples if s.pid in children)
    if not counts:
        raise SystemExit('no child process of the sender in the profile: was the cycle run with a child receiver?')
    receiver_pid = counts.most_common(1)[0][0]
    started = min(s.time for s in samples if s.pid == receiver_pid)
    writes = [s.time for s in samples if s.pid == receiver_pid and 'pwrite' in s.chain]
    first_write = min(writes) if writes else started
    roles = {'sender': collections.Counter(), 'receiver': collections.Counter()}
    receiver_start = 0
    for sample in samples:
        if sample.time < started:
            continue
        role = 'sender' if sample.pid == sender_pid else 'receiver' if sample.pid == receiver_pid else None
        if role is None:
            continue
        roles[role][bucket(sample.chain)] += 1
        if role == 'receiver' and sample.time < first_write:
            receiver_start += 1
    out = dict((role, dict((k, v / freq) for k, v in counts.items())) for role, counts in roles.items())
    out['receiver start'] = {'cpu': receiver_start / freq, 'seconds': first_write - started}
    return out


def profile_round(src, work_dir, freq, level):
    target = os.path.join(work_dir, 'target.img')
    bench_mover.remove(target, target + '.replicator')
    os.sync()
    data = os.path.join(work_dir, 'perf.data')
    args = json.dumps(dict(source=src, target=target, plan_kind='full', create_target=True, workers=2,
                           change_id='profile', compress_level=level, pipe=True))
    out = subprocess.check_output(['perf', 'record', '-q', '-a', '-g', '-F', str(freq), '-o', data, '--',
                                   sys.executable, bench_mover.__file__, '--case', args])
    case = json.loads(out.decode().strip().splitlines()[-1])     # bench_mover.run_case's answer
    result = {'pid': case['pid'], 'seconds': case['seconds'], 'copy': case['stats']['durations']['copy_seconds']}

    def script(*extra):
        return subprocess.check_output(('perf', 'script', '-i', data) + extra,
                                       stderr=subprocess.DEVNULL).decode('utf-8', 'replace')
    children = descendants(script('--show-task-events', '-F', 'comm,pid,tid,time'), result['pid'])
    samples = parse_samples(script('-F', 'comm,pid,tid,time,ip,sym,dso'))
    result['cpu'] = split_cpu(samples, result['pid'], children, float(freq))
    return result


def _spread(values):
    if len(values) == 1:
        return '%.3f' % values[0]
    return '%.3f (%.3f-%.3f)' % (statistics.median(values), min(values), max(values))


def report(rounds):
    print('%d zstd-1 cycles: %s s (copy stage %s s)' % (
        len(rounds), _spread([r['seconds'] for r in rounds]), _spread([r['copy'] for r in rounds])))
    for role in ('sender', 'receiver'):
        totals = [sum(r['cpu'][role].values()) for r in rounds]
        print('\n%s: %s CPU s' % (role, _spread(totals)))
        for name in ORDER:
            values = [r['cpu'][role].get(name, 0.0) for r in rounds]
            if max(values) >= 0.002:
                print('  %-18s %s' % (name, _spread(values)))
    start = [r['cpu']['receiver start'] for r in rounds]
    print('\nreceiver start (before its first pwrite): %s CPU s over %s s' % (
        _spread([s['cpu'] for s in start]), _spread([s['seconds'] for s in start])))
    interp = [r['cpu']['sender'].get('interpreter', 0.0) + r['cpu']['receiver'].get('interpreter', 0.0)
              for r in rounds]
    total = [sum(r['cpu']['sender'].values()) + sum(r['cpu']['receiver'].values()) for r in rounds]
    print('interpreter, both processes: %s of %s CPU s' % (_spread(interp), _spread(total)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('source', help='source image (e.g. the one bench_mover.py builds)')
    parser.add_argument('--dir', default=None, help='where the target goes (default: beside the source)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--freq', type=int, default=2000, help='samples per second and CPU')
    parser.add_argument('--level', type=int, default=1, help='zstd level')
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args()
    if args.rounds < 1 or args.freq < 1:
        parser.error('--rounds and --freq must be at least 1')
    if shutil.which('perf') is None:
        raise SystemExit('perf is not installed (Debian: apt-get install linux-perf)')
    if not os.path.isfile(args.source):
        raise SystemExit('%s is not a file; build one with bench_mover.make_image or point at any raw image'
                         % args.source)
    work_dir = tempfile.mkdtemp(prefix='cycle_profile', dir=args.dir or os.path.dirname(os.path.abspath(args.source)))
    try:
        bench_mover.plain_read(args.source)     # a warm page cache, as in the bench
        rounds = [profile_round(args.source, work_dir, args.freq, args.level) for _round in range(args.rounds)]
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(rounds, indent=1, sort_keys=True))
    else:
        report(rounds)


if __name__ == '__main__':
    main()
