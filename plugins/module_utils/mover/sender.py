# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data mover's sending side: plan -> read -> decide (zero / unchanged / copy / data) -> compress -> send.

Worker threads read blocks into pooled buffers, test for zeros, digest, look up the dedupe index and compress (one
zstd compressor per thread); the calling thread emits the results strictly in block order, makes the final dedupe
decision, applies the bandwidth limit and reports progress. The receiver is in-process ('local', no serialization;
in unjournaled cycles the workers write whole DATA blocks themselves: local_channel) or a remote process fed through
the wire (ssh_transport). Entry point: replicate_disk().
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import resource
import threading
import time

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.buffers import BufferPool
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import (
    DigestError, DigestMap, block_digest, check_geometry, index_of_map, require_xxhash, zero_digest,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import Endpoint, open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.local_channel import LocalChannel
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.plan import build_plan
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.progress import Progress
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.throttle import TokenBucket
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.wire import FRAME_HEADER_SIZE
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.zstd_loader import HAS_ZSTD, zstandard

DEFAULT_BLOCK_SIZE = 1024 * 1024
MAX_ZERO_RUN = 1024 * 1024 * 1024
PROBE_BYTES = 16 * 1024         # sample size of the "does this block compress at all?" test
PROBE_RATIO = 0.95              # a sample that does not shrink below this fraction counts as incompressible
ZERO, SAME, COPY, DATA, PARTS = 'zero', 'same', 'copy', 'data', 'parts'


class MoverError(Exception):
    """The copy failed; the message says why. Nothing of the cycle is committed."""


class Result(object):
    """Outcome of replicate_disk(): stats (dict), plan (dict), committed_change_id, restore_point (dict)."""

    def __init__(self, stats, plan, committed_change_id, restore_point, receiver_state):
        self.stats = stats
        self.plan = plan
        self.committed_change_id = committed_change_id
        self.restore_point = restore_point
        self.receiver_state = receiver_state

    def as_dict(self):
        return {'stats': self.stats, 'plan': self.plan, 'committed_change_id': self.committed_change_id,
                'restore_point': self.restore_point, 'receiver_state': self.receiver_state}


class Packer(object):
    """zstd for one thread: pack(buf) -> (payload, compressed); payload is buf itself when compressing does not pay.

    Before compressing a whole block, two PROBE_BYTES samples (start and middle) are compressed; when neither shrinks
    below PROBE_RATIO the block goes raw. Random or already compressed data then costs two small compress calls
    instead of one over the whole block (zstd-1 needs ~160 us per random MiB, a 16 KiB probe ~10 us). The probe has
    its own context: one context switching between 16 KiB and 1 MiB inputs re-sizes its tables on every call."""

    def __init__(self, level):
        self.cctx = zstandard.ZstdCompressor(level=level)
        self.probe = zstandard.ZstdCompressor(level=level)
        self.skipped = 0

    def compressible(self, view):
        n = len(view)
        if n < 4 * PROBE_BYTES:
            return True
        limit = PROBE_BYTES * PROBE_RATIO
        for start in (0, (n - PROBE_BYTES) // 2):
            if len(self.probe.compress(view[start:start + PROBE_BYTES])) <= limit:
                return True
        return False

    def pack(self, buf):
        view = memoryview(buf)
        if not self.compressible(view):
            self.skipped += 1
            return buf, False
        packed = self.cctx.compress(view)
        if len(packed) < len(view):
            return packed, True
        return buf, False


def _packer(level):
    return Packer(level) if level > 0 else None


class _Item(object):
    """One block's outcome. kind PARTS: `parts` is a list of (offset, length, ZERO|DATA, digest, payload,
    compressed) sub-block ranges (payloads may be views into buf)."""
    __slots__ = ('index', 'kind', 'offset', 'length', 'digest', 'payload', 'compressed', 'buf', 'loc', 'parts',
                 'written')

    def __init__(self, index, kind, offset, length, digest=None, payload=None, compressed=False, buf=None, loc=None,
                 parts=None):
        self.index = index
        self.kind = kind
        self.offset = offset
        self.length = length
        self.digest = digest
        self.payload = payload
        self.compressed = compressed
        self.buf = buf
        self.loc = loc
        self.parts = parts
        self.written = False    # a DATA block a worker already wrote (direct writes): the emitter only books it


class _Pipeline(object):
    """Reader/compressor workers + ordered emitter for one plan."""

    def __init__(self, source, channel, plan, target_map, dedupe_index, session_map, workers, compress_level,
                 throttle, progress, stats, use_target_index, pool, cancel=None):
        self.cancel = cancel        # an Event (with .reason) that stops the copy between blocks
        self.source = source
        self.channel = channel
        self.plan = plan
        self.target_map = target_map
        self.index = dedupe_index
        self.session_map = session_map
        self.workers = max(1, int(workers))
        self.level = int(compress_level or 0)
        self.throttle = throttle
        self.progress = progress
        self.stats = stats
        self.use_target_index = use_target_index
        bs = plan.block_size
        self.zero = bytes(bs)
        self.pool = pool
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._next = 0
        self._results = {}
        self._error = None
        self._stop = False
        self._wstats = []
        self._zero_run = None
        # raw blocks of a file source go to a pipe by splice: the emitter does not copy them (the worker still read
        # them, for the zero test, the digest and the compression probe)
        src_fd = getattr(source, 'fd', None)
        # whole DATA blocks of an unjournaled in-process cycle are written by the worker that read them (its buffer
        # is still in that core's cache); the emitter books them in order. Duplicates within the cycle: the first
        # block of a digest to be written claims it (_writing), the others wait for its write and become copies of it
        self._direct = bool(getattr(channel, 'direct_writes', False)) and not use_target_index
        self._writing = set()
        self._written = threading.Condition(threading.Lock())
        self._splice_base = getattr(source, 'base', 0) if (
            isinstance(src_fd, int) and src_fd >= 0 and getattr(channel, 'can_splice', False)) else None

    # ---- workers --------------------------------------------------------------------------------------------

    def _worker(self):
        cctx = _packer(self.level)
        ws = {'read_seconds': 0.0, 'digest_seconds': 0.0, 'compress_seconds': 0.0, 'bytes_read': 0}
        self._wstats.append(ws)
        cpu0 = time.thread_time()
        blocks = self.plan.blocks
        try:
            while True:
                try:
                    buf = self.pool.get(timeout=0.5)
                except RuntimeError:
                    if self._stop:
                        return
                    continue
                with self._lock:
                    seq = self._next
                    self._next += 1
                if self._stop or seq >= len(blocks):
                    self.pool.put(buf)
                    return
                item = self._process(blocks[seq], buf, cctx, ws)
                with self._cond:
                    self._results[seq] = item
                    self._cond.notify_all()
        except Exception as e:  # handed to the emitter, which raises it in the caller's thread
            with self._cond:
                if self._error is None:
                    self._error = e
                self._cond.notify_all()
        finally:
            ws['cpu_workers'] = time.thread_time() - cpu0
            ws['blocks_sent_raw'] = cctx.skipped if cctx is not None else 0

    def _process(self, index, buf, cctx, ws):
        plan = self.plan
        offset, length = plan.block_range(index)
        if index in plan.source_zero:
            self.pool.put(buf)
            if plan.compare and self.target_map.matches(index, zero_digest(length)):
                return _Item(index, SAME, offset, length)
            return _Item(index, ZERO, offset, length, zero_digest(length))
        pieces = plan.parts.get(index)
        if pieces is not None:
            return self._process_parts(index, offset, length, pieces, buf, cctx, ws)
        if length != len(buf):
            self.pool.put(buf)
            buf = bytearray(length)     # the short last block: once per disk
        t0 = time.monotonic()
        self.source.preadinto(offset, buf)
        t1 = time.monotonic()
        ws['read_seconds'] += t1 - t0
        ws['bytes_read'] += length
        if buf == self.zero if length == len(self.zero) else not any(buf):
            self._release(buf)
            if plan.compare and self.target_map.matches(index, zero_digest(length)):
                return _Item(index, SAME, offset, length)
            return _Item(index, ZERO, offset, length, zero_digest(length))
        digest = block_digest(buf)
        t2 = time.monotonic()
        ws['digest_seconds'] += t2 - t1
        if plan.compare and self.target_map.matches(index, digest):
            self._release(buf)
            return _Item(index, SAME, offset, length, digest)
        loc = self.index.get(digest)
        if loc is not None and loc[2] == length:
            if loc[0] == 0 and loc[1] == offset and self.use_target_index:
                self._release(buf)
                return _Item(index, SAME, offset, length, digest)
            return _Item(index, COPY, offset, length, digest, buf=buf, loc=loc)
        item = _Item(index, DATA, offset, length, digest, buf=buf)
        if self._direct:
            return self._write_direct(item)
        self._compress(item, cctx, ws)
        return item

    def _write_direct(self, item):
        """Direct writes: write the block now, or make it a copy of the block of this cycle that has its digest
        (waiting while that block is being written). Written blocks go into the dedupe index once on the target."""
        digest = item.digest
        with self._written:
            while digest in self._writing:
                if self._stop:
                    raise MoverError('stopped')
                self._written.wait(0.5)
            loc = self.index.get(digest)
            if loc is not None and loc[2] == item.length:
                item.kind = COPY
                item.loc = loc
                return item
            self._writing.add(digest)
        ok = False
        try:
            self.channel.write_block(item.offset, item.length, digest, item.buf)
            ok = True
        finally:
            with self._written:
                self._writing.discard(digest)
                if ok:
                    self.index.setdefault(digest, (0, item.offset, item.length))
                self._written.notify_all()
        item.written = True
        return item

    def _process_parts(self, index, offset, length, pieces, buf, cctx, ws):
        """Read and send only the changed ranges of a block (cbt plans); the receiver re-digests the block."""
        parts = []
        view = memoryview(buf)
        for start, n in pieces:
            piece = view[start - offset:start - offset + n]
            t0 = time.monotonic()
            self.source.preadinto(start, piece)
            t1 = time.monotonic()
            ws['read_seconds'] += t1 - t0
            ws['bytes_read'] += n
            digest = block_digest(piece)
            ws['digest_seconds'] += time.monotonic() - t1
            if digest == zero_digest(n):
                parts.append((start, n, ZERO, digest, None, False))
                continue
            payload, compressed = piece, False
            if cctx is not None:
                t2 = time.monotonic()
                payload, compressed = cctx.pack(piece)
                ws['compress_seconds'] += time.monotonic() - t2
            parts.append((start, n, DATA, digest, payload, compressed))
        return _Item(index, PARTS, offset, length, buf=buf, parts=parts)

    def _compress(self, item, cctx, ws):
        item.payload = item.buf
        item.compressed = False
        if cctx is None:
            return
        t0 = time.monotonic()
        item.payload, item.compressed = cctx.pack(item.buf)
        ws['compress_seconds'] += time.monotonic() - t0

    def _release(self, buf):
        if len(buf) == self.pool.size:
            self.pool.put(buf)

    # ---- emitter --------------------------------------------------------------------------------------------

    def _take(self, seq):
        with self._cond:
            while seq not in self._results:
                if self._error is not None:
                    raise self._error
                self._cond.wait(1.0)
            return self._results.pop(seq)

    def run(self):
        threads = [threading.Thread(target=self._worker, name='mover-worker-%d' % i) for i in range(self.workers)]
        for t in threads:
            t.daemon = True
            t.start()
        cpu0 = time.thread_time()
        try:
            for seq in range(len(self.plan.blocks)):
                if self.cancel is not None and self.cancel.is_set():
                    raise MoverError('stopped: %s; nothing of this cycle is committed'
                                     % (getattr(self.cancel, 'reason', None) or 'cancelled'))
                item = self._take(seq)
                try:
                    self._emit(item)
                finally:
                    if item.buf is not None:
                        self._release(item.buf)
            self._flush_zero()
        except BaseException:
            with self._cond:
                self._stop = True
            raise
        finally:
            with self._cond:
                self._stop = True
            for t in threads:
                t.join(30)
            cpu = self.stats.setdefault('cpu', {})
            cpu['emit'] = time.thread_time() - cpu0
            for ws in self._wstats:
                cpu['workers'] = cpu.get('workers', 0.0) + ws.pop('cpu_workers', 0.0)
                for k, v in ws.items():
                    self.stats[k] = self.stats.get(k, 0) + v

    def _wire(self, payload_len):
        n = FRAME_HEADER_SIZE + payload_len
        waited = self.throttle.take(n)
        self.stats['throttle_seconds'] += waited
        self.stats['bytes_sent'] += n

    def _flush_zero(self):
        run = self._zero_run
        if run is None:
            return
        self._zero_run = None
        offset, length = run
        self.channel.zero(offset, length, zero_digest(min(self.plan.block_size, length)))
        self._wire(0)

    def _emit(self, item):
        st = self.stats
        if item.kind != ZERO:
            self._flush_zero()
        if item.kind == PARTS:
            self._emit_parts(item)
            return
        if item.kind == SAME:
            st['bytes_unchanged'] += item.length
        elif item.kind == ZERO:
            run = self._zero_run
            if run is not None and run[0] + run[1] == item.offset and run[1] + item.length <= MAX_ZERO_RUN:
                self._zero_run = (run[0], run[1] + item.length)
            else:
                self._flush_zero()
                self._zero_run = (item.offset, item.length)
            self.session_map.set(item.index, item.digest)
            st['bytes_zero'] += item.length
        elif item.written:
            self.channel.book_block(item.offset, item.length, item.digest)
            self._wire(item.length)
            st['bytes_data'] += item.length
            st['bytes_compressed'] += item.length
            st['blocks_written_direct'] = st.get('blocks_written_direct', 0) + 1
            self.session_map.set(item.index, item.digest)
        else:
            loc = item.loc if item.kind == COPY else self.index.get(item.digest)
            if loc is not None and not self._valid(loc, item):
                loc = None
            if loc is not None:
                self.channel.copy(item.offset, item.length, item.digest, loc[0], loc[1])
                self._wire(0)
                st['bytes_deduplicated'] += item.length
            else:
                if item.payload is None:
                    self._compress(item, _packer(self.level), {'compress_seconds': 0.0})
                if self._splice_base is not None and not item.compressed:
                    self.channel.data_from_file(item.offset, item.length, item.digest, self.source.fd,
                                                self._splice_base + item.offset)
                    st['blocks_spliced'] = st.get('blocks_spliced', 0) + 1
                else:
                    self.channel.data(item.offset, item.length, item.digest, item.payload, item.compressed)
                self._wire(len(item.payload))
                st['bytes_data'] += item.length
                st['bytes_compressed'] += len(item.payload)
                self.index.setdefault(item.digest, (0, item.offset, item.length))
            self.session_map.set(item.index, item.digest)
        self.progress.add(item.length)

    def _emit_parts(self, item):
        st = self.stats
        done = 0
        for offset, length, kind, digest, payload, compressed in item.parts:
            if kind == ZERO:
                self.channel.zero(offset, length, digest, partial=True)
                self._wire(0)
                st['bytes_zero'] += length
            else:
                self.channel.data(offset, length, digest, payload, compressed, partial=True)
                self._wire(len(payload))
                st['bytes_data'] += length
                st['bytes_compressed'] += len(payload)
            done += length
        # the block's new digest is only known to the receiver (it re-digests the block from the target)
        self.session_map.forget(item.index)
        self.progress.add(done)

    def _valid(self, loc, item):
        """A dedupe location is still usable: other disks are verified by the receiver; on this target the block
        at loc must still hold that digest (it may have been overwritten earlier in this session)."""
        source, offset, length = loc
        if length != item.length:
            return False
        if source != 0:
            return True
        if offset == item.offset:
            return False
        if self._direct:    # a block a worker wrote in this cycle (_write_direct): each block is written once per plan
            return True
        return self.session_map.matches(offset // self.plan.block_size, item.digest)


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _open_channel(receiver, allowed_roots):
    if receiver in (None, 'local'):
        return LocalChannel(allowed_roots=allowed_roots)
    from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec, StreamChannel
    if isinstance(receiver, ReceiverSpec):
        return StreamChannel(receiver)
    raise MoverError("receiver must be 'local' or a ReceiverSpec/SshReceiverSpec, got %r" % (receiver,))


def replicate_disk(source, target, plan_kind='full', cbt_extents=None, receiver='local', state_dir=None,
                   change_id=None, block_size=DEFAULT_BLOCK_SIZE, workers=2, compress_level=1, bandwidth_mbps=0,
                   progress_file=None, dedupe_sources=(), retention=None, journal=True, allowed_roots=None,
                   create_target=False, cycle_id=None, meta=None, sealed_points=None, cancel=None):
    """Copy one disk into its replica and commit a restore point.

    source: Endpoint or spec (path, VMDK descriptor, file://, nbd URI) read on this host.
    target: spec of the replica disk as seen by the receiver (a path on the SSH host for remote receivers).
    plan_kind: 'full' | 'cbt' (needs cbt_extents: (start, length) pairs) | 'digests' | 'seeded'.
    receiver: 'local' (in-process) or an ssh_transport.SshReceiverSpec / ReceiverSpec.
    state_dir: replica store directory (default <target>.replicator). change_id: committed with the map.
    compress_level: zstd level for remote receivers (0 = raw; the local receiver never compresses).
    dedupe_sources: other replica disks on the receiver side, [{'target': spec, 'state_dir': dir}, ...].
    retention: restore points the replica disk keeps (None: all); sealed_points: the ids of the points the replica VM
    sealed, so that retention counts sealed points (store.replica_store.prune_start); None: a plain count.
    cancel: a threading.Event; once set (with an optional .reason), the copy stops before its next block, the
    receiver aborts the cycle and nothing is committed.
    Returns a Result; raises MoverError (or EndpointError / TransportError) with nothing committed.
    """
    require_xxhash()
    local = receiver in (None, 'local')
    level = 0 if local else int(compress_level or 0)
    if level and not HAS_ZSTD:
        raise MoverError('compression needs the python library zstandard (pip install zstandard) or compress_level 0')
    stats = {'bytes_planned': 0, 'bytes_read': 0, 'bytes_zero': 0, 'bytes_unchanged': 0, 'bytes_deduplicated': 0,
             'bytes_data': 0, 'bytes_compressed': 0, 'bytes_sent': 0, 'bytes_written': 0, 'throttle_seconds': 0.0}
    durations = {}
    started = time.monotonic()
    progress = Progress(progress_file, extra={'source': getattr(source, 'name', source), 'target': target})
    progress.set_stage('connecting')
    own_source = not isinstance(source, Endpoint)
    src = open_endpoint(source) if own_source else source
    channel = None
    committed = False
    try:
        try:
            check_geometry(src.size, block_size)    # before any buffer of that size is made
        except DigestError as e:
            raise MoverError(str(e))
        channel = _open_channel(receiver, allowed_roots)
        # a receiver process is starting now: prepare what does not depend on its answer meanwhile: the pipeline's
        # block buffers, two per worker (one being filled, one waiting for the emitter) and two more (touched as they
        # are made, ~4 ms for 6 MiB here), and the source's extents (an NBD source answers its block status)
        pool = BufferPool(max(1, int(workers)) * 2 + 2, block_size)
        src_extents = list(src.extents(0, src.size))
        params = {'target': target, 'state_dir': state_dir, 'capacity': src.size, 'block_size': block_size,
                  'plan': plan_kind, 'journal': bool(journal), 'create': bool(create_target),
                  'seed': plan_kind in ('digests', 'seeded'), 'cycle_id': cycle_id, 'meta': meta or {},
                  'allowed_roots': allowed_roots,
                  'dedupe': [dict(d, id=i + 1) for i, d in enumerate(dedupe_sources or ())]}
        state, maps = channel.hello(params)
        if state['capacity'] != src.size:
            raise MoverError('size mismatch: source %s is %d bytes, target %s is %d bytes'
                             % (src.name, src.size, target, state['capacity']))
        durations['connect_seconds'] = time.monotonic() - started

        t0 = time.monotonic()
        progress.set_stage('planning')
        kind = plan_kind
        if kind == 'digests' and state.get('seeded'):
            kind = 'seeded'
        target_map = maps.get(0)
        plan = build_plan(kind, src.size, block_size, cbt_extents=cbt_extents, source_extents=src_extents,
                          target_map=target_map)
        stats['bytes_planned'] = plan.bytes_planned
        index = {}
        use_target_index = kind != 'full' and target_map is not None
        if use_target_index:
            index_of_map(target_map, 0, index)
        for sid in sorted(maps):
            if sid:
                index_of_map(maps[sid], sid, index)
        session_map = target_map.copy() if target_map is not None else DigestMap(src.size, block_size)
        durations['plan_seconds'] = time.monotonic() - t0

        t0 = time.monotonic()
        progress.set_stage('copying', total=plan.bytes_planned)
        pipe = _Pipeline(src, channel, plan, target_map, index, session_map, workers, level,
                         TokenBucket(bandwidth_mbps), progress, stats, use_target_index, pool, cancel)
        pipe.run()
        durations['copy_seconds'] = time.monotonic() - t0

        t0 = time.monotonic()
        progress.set_stage('committing')
        if retention is not None and sealed_points is not None:
            retention = {'keep': retention, 'sealed': [str(i) for i in sealed_points]}
        info = {'change_id': change_id, 'meta': meta or {}, 'retention': retention}
        need = channel.end(info)
        if need:
            _resend(src, channel, need, plan, level, stats)
            need = channel.end(info)
            if need:
                raise MoverError('the receiver still needs %d blocks after they were resent' % len(need))
        result = channel.result
        committed = True
        durations['commit_seconds'] = time.monotonic() - t0
        rx_stats = result.get('stats') or {}
        stats['bytes_written'] = rx_stats.get('bytes_written', 0)
        stats['receiver'] = rx_stats
        if not local:
            stats['bytes_sent'] = channel.bytes_sent
        durations['total_seconds'] = time.monotonic() - started
        stats['durations'] = durations
        stats['peak_rss_bytes'] = _peak_rss()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats.setdefault('cpu', {})['process'] = usage.ru_utime + usage.ru_stime
        stats['peak_buffers'] = pipe.pool.peak
        progress.set_stage('done')
        return Result(stats, plan.describe(), change_id, result.get('restore_point'), state)
    except BaseException as e:
        # the link broke after END: the receiver may have committed before, so the caller must not claim it did not
        # (a receiver that answered with an error, or a local one, did not commit)
        if progress.stage == 'committing' and not committed and getattr(e, 'link_lost', False):
            e.commit_outcome_unknown = True
        progress.extra['error'] = str(e)
        progress.set_stage('failed')
        if channel is not None and not committed:
            channel.abort(str(e))
        raise
    finally:
        if channel is not None:
            channel.close()
        if own_source:
            src.close()


def _resend(src, channel, offsets, plan, level, stats):
    """Answer a NEED list: send the named blocks as DATA."""
    cctx = _packer(level)
    for offset in offsets:
        length = min(plan.block_size, plan.capacity - offset)
        buf = bytearray(length)
        src.preadinto(offset, buf)
        payload, compressed = cctx.pack(buf) if cctx is not None else (buf, False)
        channel.data(offset, length, block_digest(buf), payload, compressed)
        stats['bytes_resent'] = stats.get('bytes_resent', 0) + length
        stats['bytes_sent'] += FRAME_HEADER_SIZE + len(payload)
