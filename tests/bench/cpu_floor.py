# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CPU a full zstd-1 cycle cannot avoid, measured stage by stage in one thread on the bench image.

    PYTHONPATH=<acroot> .venv/bin/python tests/bench/cpu_floor.py SRC_IMAGE [--dir D] [--repeat 3]

One pass over the data blocks of SRC_IMAGE (the mover's own full plan: blocks in source holes are not read) does,
per 1 MiB block, exactly the work the sender and the receiver of a zstd-1 cycle do, with the mover's own functions,
and times each stage with the thread's CPU clock: read (the source endpoint's preadinto into a reused buffer), sender
digest (xxh3-128), pack (the mover's Packer: probe, then zstd-1 or raw), pipe (raw blocks spliced from the file into
a pipe, compressed ones written; then read out into a buffer, as the receiver's reader thread does), decompress,
receiver digest, and the pwrite into a new file. No threads, no queues, no interpreter start: the sum is a floor for
the CPU of the real pipeline, and half of it is the least wall time two cores can need for the copy stage.
nbdcopy's share of the same list is read + write. Best of --repeat passes per stage. Used by bench_mover.py; prints
JSON when run alone.
"""

from __future__ import absolute_import, division, print_function

import argparse
import fcntl
import json
import os
import tempfile
import time

MIB = 1024 * 1024
F_GETPIPE_SZ = getattr(fcntl, 'F_GETPIPE_SZ', 1032)
STAGES = ('read', 'digest', 'pack', 'pipe', 'decompress', 'verify', 'write')


def one_pass(src, scratch_dir, block_size=MIB, level=1):
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import block_digest
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import FileEndpoint
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import Packer
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.plan import build_plan
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.wire import widen_pipe
    from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.zstd_loader import zstandard

    cpu = dict.fromkeys(STAGES, 0.0)
    clock = time.thread_time
    packer = Packer(level)
    dctx = zstandard.ZstdDecompressor()
    buf = bytearray(block_size)
    landing = bytearray(block_size)
    source = FileEndpoint(src)
    fd = source.fd
    out, out_path = tempfile.mkstemp(prefix='floor', dir=scratch_dir)
    rpipe, wpipe = os.pipe()
    widen_pipe(wpipe, block_size)
    room = fcntl.fcntl(wpipe, F_GETPIPE_SZ)
    blocks = 0
    try:
        plan = build_plan('full', source.size, block_size, source_extents=list(source.extents(0, source.size)))
        for index in plan.blocks:
            if index in plan.source_zero:   # a hole: the mover sends ZERO without reading it
                continue
            offset, n = plan.block_range(index)
            view = memoryview(buf)[:n]
            t = clock()
            source.preadinto(offset, view)
            t1 = clock()
            digest = block_digest(view)
            t2 = clock()
            payload, compressed = packer.pack(view)
            t3 = clock()
            got = memoryview(landing)[:len(payload)]
            done = 0
            while done < len(got):      # through the pipe in pieces of its capacity, one thread on both ends
                step = min(room, len(got) - done)
                if compressed:
                    sent = os.write(wpipe, payload[done:done + step])
                else:
                    sent = os.splice(fd, wpipe, step, offset_src=offset + done)
                pos = 0
                while pos < sent:
                    pos += os.readv(rpipe, [got[done + pos:done + sent]])
                done += sent
            t4 = clock()
            plain = dctx.decompress(got, max_output_size=n) if compressed else got
            t5 = clock()
            if block_digest(plain) != digest:
                raise RuntimeError('block at %d did not survive the round trip' % offset)
            t6 = clock()
            os.pwrite(out, plain, offset)
            t7 = clock()
            for stage, secs in zip(STAGES, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
                cpu[stage] += secs
            blocks += 1
    finally:
        source.close()
        for f in (out, rpipe, wpipe):
            os.close(f)
        os.unlink(out_path)
    return cpu, blocks


def measure(src, scratch_dir=None, repeat=3):
    """Best CPU seconds per stage over `repeat` passes: {'stages': {...}, 'mover': sum, 'nbdcopy_share': read +
    write, 'blocks': n}."""
    best = None
    blocks = 0
    for _i in range(repeat):
        os.sync()
        cpu, blocks = one_pass(src, scratch_dir or os.path.dirname(os.path.abspath(src)))
        best = cpu if best is None else {k: min(best[k], cpu[k]) for k in STAGES}
    return {'stages': best, 'mover': sum(best.values()), 'nbdcopy_share': best['read'] + best['write'],
            'blocks': blocks}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('src')
    p.add_argument('--dir')
    p.add_argument('--repeat', type=int, default=3)
    a = p.parse_args()
    print(json.dumps(measure(a.src, a.dir, a.repeat), indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
