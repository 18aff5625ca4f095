# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Receiving side of the data mover: verifies, journals and writes blocks into the replica disk, then commits.

`Receiver` is used in-process by the local transport and by `serve()` (the remote end of the SSH transport, fed
from the wire stream, see docs/wire-format.md). Order of safety:
  * every block's digest is checked after decompression, BEFORE anything is written;
  * the old content of a range is journaled through the replica store (restore point) before it is overwritten;
  * a COPY op is only written when the bytes read from its source match the op digest, otherwise the block is put
    on the NEED list the sender answers with DATA;
  * the new digest map and change id are committed by the store only after every op is applied, the target is
    flushed, and the op count matches the sender's; any error aborts the cycle (the journal rolls it back) and an
    interrupted process is rolled back by recover() at the next start.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import resource
import threading
import time

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue  # pylint: disable=import-error

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import wire
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import (
    DigestError, DigestMap, block_digest, changed_ranges, zero_digest,
)
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import EndpointError, FileEndpoint, open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.extents import coalesce, fully_covered_blocks
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.zstd_loader import HAS_ZSTD, zstandard

DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
DIFF_PAGE = 4096        # journaled cycles journal and write only the 4 KiB pages of a DATA block that changed
READ_AHEAD_FRAMES = 4


class ReceiverError(Exception):
    """The receiver refused or failed the cycle; nothing of it is committed."""


def retention_policy(retention):
    """(keep, sealed) out of the END info's retention: None, a number, or {'keep': N, 'sealed': [ids] or None}."""
    if isinstance(retention, dict):
        sealed = retention.get('sealed')
        if sealed is not None and (not isinstance(sealed, (list, tuple)) or not all(isinstance(i, str) for i in sealed)):
            raise ReceiverError('retention: sealed must be a list of restore point ids, got %r' % (sealed,))
        return retention.get('keep'), (None if sealed is None else list(sealed))
    return retention, None


def _create_file(path, capacity, allowed_roots):
    if allowed_roots is not None:
        real = os.path.realpath(path)
        if not any(real == os.path.realpath(r) or real.startswith(os.path.realpath(r).rstrip(os.sep) + os.sep)
                   for r in allowed_roots):
            raise ReceiverError('%s is outside the allowed directories (%s)' % (path, ', '.join(allowed_roots)))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, capacity)
        os.fsync(fd)
    finally:
        os.close(fd)


class Receiver(object):
    """One cycle on one replica disk: hello() -> apply ops -> finish() (NEED list) -> commit() | abort()."""

    def __init__(self, allowed_roots=None, batch_bytes=DEFAULT_BATCH_BYTES):
        self.allowed_roots = allowed_roots
        self.batch_bytes = batch_bytes
        self.target = None
        self.store = None
        self.cycle = None
        self.map = None
        self.maps = {}
        self.sources = {}
        self.capacity = 0
        self.block_size = 0
        self.journal = False
        self.zero_known = None
        self.need = []
        self.ops = 0
        self._pending = []
        self._pending_bytes = 0
        self._slots = []
        self._scratch = None
        self._zero_block = None
        self._dctx = None
        self._partial = set()
        self._direct_lock = threading.Lock()    # its timings: added to stats in finish()
        self._direct_seconds = [0.0, 0.0]       # verify, write
        self.stats = {'ops': 0, 'bytes_written': 0, 'bytes_zeroed': 0, 'bytes_zero_skipped': 0, 'bytes_copied': 0,
                      'copy_misses': 0, 'bytes_journaled': 0, 'bytes_seed_read': 0, 'bytes_rehashed': 0,
                      'partial_ops': 0, 'bytes_same_skipped': 0, 'diff_seconds': 0.0, 'write_seconds': 0.0, 'journal_seconds': 0.0, 'verify_seconds': 0.0,
                      'seed_seconds': 0.0, 'rehash_seconds': 0.0}

    # ---- setup ----------------------------------------------------------------------------------------------

    def hello(self, params):
        """Open the target and its store, recover, load state, begin the cycle. Returns (state dict, maps dict)."""
        from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore, default_state_dir
        target = params['target']
        self.capacity = int(params['capacity'])
        self.block_size = int(params['block_size'])
        state_dir = params.get('state_dir') or default_state_dir(target)
        path = target[len('file://'):] if target.startswith('file://') else target
        if params.get('create') and '://' not in path and not os.path.exists(path):
            _create_file(path, self.capacity, self.allowed_roots)
        self.target = open_endpoint(target, writable=True, allowed_roots=self.allowed_roots)
        if self.target.size != self.capacity:
            raise ReceiverError('size mismatch: the source disk is %d bytes but the target %s is %d bytes; resize the '
                                'replica disk to the source capacity (nothing was written)'
                                % (self.capacity, self.target.name, self.target.size))
        self.store = ReplicaStore(state_dir)
        recovered = self.store.recover(self.target)
        manifest = self.store.load()
        committed = None
        if manifest and manifest.get('block_size') == self.block_size and manifest.get('capacity') == self.capacity:
            blob = self.store.read_digest_map()
            if blob:
                try:
                    committed = DigestMap.from_bytes(blob)
                except DigestError:
                    committed = None
                if committed is not None and not (committed.capacity == self.capacity
                                                  and committed.block_size == self.block_size):
                    committed = None
        self._scan_zero()
        seeded = False
        if params.get('seed') and (committed is None or params.get('plan') == 'seeded'):
            committed = self._seed()
            seeded = True
        self.map = committed.copy() if committed is not None else DigestMap(self.capacity, self.block_size)
        if committed is not None:
            self.maps[0] = committed
        for src in params.get('dedupe') or ():
            self._open_dedupe_source(src)
        has_points = bool(manifest and manifest.get('restore_points'))
        self.journal = bool(params.get('journal', True)) and has_points
        self.cycle = self.store.begin(self.target, cycle_id=params.get('cycle_id'), journal=self.journal,
                                      meta=params.get('meta'))
        state = {'change_id': manifest.get('change_id') if manifest else None,
                 'capacity': self.target.size, 'block_size': self.block_size,
                 'generation': manifest.get('generation') if manifest else None,
                 'has_map': committed is not None and not seeded, 'seeded': seeded,
                 'journal': self.journal, 'recovered': recovered, 'maps': sorted(self.maps),
                 'restore_points': len(manifest.get('restore_points') or ()) if manifest else 0}
        return state, dict(self.maps)

    def _scan_zero(self):
        count = (self.capacity + self.block_size - 1) // self.block_size
        self.zero_known = bytearray(count)
        holes = [(o, n) for o, n, z in self.target.extents(0, self.capacity) if z]
        for i in fully_covered_blocks(holes, self.block_size, self.capacity):
            self.zero_known[i] = 1

    def _seed(self):
        """Digest the whole target (no usable committed map)."""
        started = time.monotonic()
        dmap = DigestMap(self.capacity, self.block_size)
        buf = bytearray(self.block_size)
        for i in range(dmap.count):
            n = dmap.block_length(i)
            if self.zero_known[i]:
                dmap.set(i, zero_digest(n))
                continue
            view = buf if n == self.block_size else bytearray(n)
            self.target.preadinto(i * self.block_size, view)
            dmap.set(i, block_digest(view))
            self.stats['bytes_seed_read'] += n
        self.stats['seed_seconds'] += time.monotonic() - started
        return dmap

    def _open_dedupe_source(self, src):
        from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore, default_state_dir
        sid = int(src['id'])
        if sid <= 0 or sid > 65535:
            raise ReceiverError('dedupe source ids are 1..65535, got %r' % (src['id'],))
        store = ReplicaStore(src.get('state_dir') or default_state_dir(src['target']))
        manifest = store.load()
        if not manifest or manifest.get('open_cycle') or manifest.get('block_size') != self.block_size:
            return      # nothing committed there (or another geometry): simply not a dedupe source
        blob = store.read_digest_map()
        if not blob:
            return
        try:
            dmap = DigestMap.from_bytes(blob)
        except DigestError:
            return
        self.sources[sid] = open_endpoint(src['target'], writable=False)
        self.maps[sid] = dmap

    # ---- ops ------------------------------------------------------------------------------------------------

    def _check_block(self, offset, length):
        if offset % self.block_size or length <= 0 or offset + length > self.capacity:
            raise ReceiverError('op at offset %d length %d is not a block of this disk (%d bytes, %d-byte blocks)'
                                % (offset, length, self.capacity, self.block_size))
        if length != min(self.block_size, self.capacity - offset):
            raise ReceiverError('op at offset %d has length %d; expected a whole block' % (offset, length))

    def _check_piece(self, offset, length, what):
        if offset < 0 or length <= 0 or offset + length > self.capacity or \
                offset // self.block_size != (offset + length - 1) // self.block_size:
            raise ReceiverError('partial %s op (%d, %d) is not a range inside one block of this disk (%d bytes, '
                                '%d-byte blocks)' % (what, offset, length, self.capacity, self.block_size))

    def apply_data(self, offset, length, digest, payload, compressed, partial=False):
        """DATA op: payload is the plain block or a zstd frame of it. Verified before anything is written.

        partial: the op covers only [offset, offset + length) inside one block (digest of those bytes); the block's
        digest for the map is recomputed from the target in finish()."""
        self.store_data(offset, length, digest, self.decode_data(offset, length, digest, payload, compressed, partial),
                        partial=partial, copied=bool(compressed))

    def decode_data(self, offset, length, digest, payload, compressed, partial=False):
        """The checks, decompression and verification of a DATA op: returns the plain bytes (payload itself when
        it was not compressed). Touches nothing but the decompressor and verify_seconds, so a stream's reader
        thread can run it for the next op while store_data() writes the previous one."""
        if partial:
            self._check_piece(offset, length, 'DATA')
        else:
            self._check_block(offset, length)
        started = time.monotonic()
        if compressed:
            if not HAS_ZSTD:
                raise ReceiverError('a compressed block arrived but the python library zstandard is missing')
            if self._dctx is None:
                self._dctx = zstandard.ZstdDecompressor()
            try:
                plain = self._dctx.decompress(payload, max_output_size=length)
            except zstandard.ZstdError as e:
                raise ReceiverError('block at offset %d: corrupted compressed data (%s)' % (offset, e))
        else:
            plain = payload
        if len(plain) != length or block_digest(plain) != digest:
            raise ReceiverError('block at offset %d: digest mismatch after decompression (corrupted stream); the '
                                'cycle is aborted and nothing is committed' % offset)
        self.stats['verify_seconds'] += time.monotonic() - started
        return plain

    def store_data(self, offset, length, digest, plain, partial=False, copied=False):
        """Write (or queue for the journal batch) a DATA op that decode_data() verified. copied: `plain` is a
        private object (the decompressor's output), not a buffer the caller will reuse."""
        self.ops += 1
        kind = 'piece' if partial else 'data'
        if not self.journal:
            self._apply(kind, offset, length, digest, plain)
            return
        if copied:
            data = plain
        else:
            data = self._slot(len(self._pending), length)
            data[:] = plain
        self._queue((kind, offset, length, digest, data))

    def write_unjournaled(self, offset, length, digest, plain):
        """A whole DATA block from an in-process sender's worker thread, in any order (unjournaled cycles only: the
        first cycle of a replica, or journal off): checks, verifies and writes it. Safe to call from several threads
        at once for distinct blocks; book_written() then books it in op order. A wrong block raises ReceiverError
        before anything of it is written."""
        if self.journal:
            raise ReceiverError('internal error: a journaled cycle takes its blocks in order, through apply_data()')
        self._check_block(offset, length)
        started = time.monotonic()
        if len(plain) != length or block_digest(plain) != digest:
            raise ReceiverError('block at offset %d: digest mismatch between the block read and the block to '
                                'write; the cycle is aborted and nothing is committed' % offset)
        verified = time.monotonic()
        self.target.pwrite(offset, plain)
        done = time.monotonic()
        with self._direct_lock:
            self._direct_seconds[0] += verified - started
            self._direct_seconds[1] += done - verified

    def book_written(self, offset, length, digest):
        """Book a block write_unjournaled() wrote (op count, digest map, zero map), in op order."""
        self.ops += 1
        self._book(offset, length, digest)

    def apply_zero(self, offset, length, digest, partial=False):
        """ZERO op over one or more whole blocks (partial: over a range inside one block)."""
        if partial:
            self._check_piece(offset, length, 'ZERO')
            if digest != zero_digest(length):
                raise ReceiverError('ZERO op at offset %d carries a wrong digest (corrupted stream)' % offset)
            self.ops += 1
            if not self.journal:
                self._zero_piece(offset, length)
            else:
                self._queue(('zero-piece', offset, length, digest, None))
            return
        if offset % self.block_size or length <= 0 or offset + length > self.capacity:
            raise ReceiverError('ZERO op (%d, %d) does not cover whole blocks of this disk' % (offset, length))
        if (offset + length) % self.block_size and offset + length != self.capacity:
            raise ReceiverError('ZERO op (%d, %d) ends inside a block' % (offset, length))
        if digest != zero_digest(min(self.block_size, length)):
            raise ReceiverError('ZERO op at offset %d carries a wrong digest (corrupted stream)' % offset)
        self.ops += 1
        if not self.journal:
            self._zero(offset, length)
            return
        self._queue(('zero', offset, length, digest, None))

    def apply_copy(self, offset, length, digest, source, src_offset):
        """COPY op: the block equals `length` bytes at src_offset of source (0 = this target, else a dedupe disk)."""
        self._check_block(offset, length)
        if source != 0 and source not in self.sources:
            raise ReceiverError('COPY op names unknown dedupe source %d' % source)
        src_size = self.capacity if source == 0 else self.sources[source].size
        if src_offset < 0 or src_offset + length > src_size:
            raise ReceiverError('COPY op source range (%d, %d) is outside source %d' % (src_offset, length, source))
        self.ops += 1
        if not self.journal:
            self._copy(offset, length, digest, source, src_offset)
            return
        self._queue(('copy', offset, length, digest, (source, src_offset)))

    # ---- batching and writing -------------------------------------------------------------------------------

    def _slot(self, k, length):
        while len(self._slots) <= k:
            self._slots.append(bytearray(self.block_size))
        slot = self._slots[k]
        return slot if length == self.block_size else memoryview(slot)[:length]

    def _queue(self, entry):
        self._pending.append(entry)
        self._pending_bytes += entry[2] if entry[0] not in ('zero', 'zero-piece') else 0
        if self._pending_bytes >= self.batch_bytes or len(self._pending) >= 4096:
            self._flush_batch()

    def _flush_batch(self):
        if not self._pending:
            return
        ranges = []
        pending = []
        touched = set()     # blocks an earlier op of this batch changes: the target does not show it yet
        diff = isinstance(self.target, FileEndpoint)    # reading back is cheap there (an NBD target: a round trip)
        bs = self.block_size
        for entry in self._pending:
            kind, offset, length, digest, data = entry
            first = offset // bs
            blocks = range(first, (offset + length + bs - 1) // bs) if kind == 'zero' else (first,)
            if kind == 'data' and diff and first not in touched:
                changed = self._changed_pages(offset, data)
                ranges.extend((offset + start, n) for start, n in changed)
                entry = ('pages', offset, length, digest, (data, changed))
            elif kind == 'data':
                ranges.append((offset, length))
            elif kind == 'zero':
                ranges.extend(self._nonzero_ranges(offset, length))
            elif kind != 'zero-piece' or not self.zero_known[offset // self.block_size]:
                ranges.append((offset, length))
            pending.append(entry)
            touched.update(blocks)
        started = time.monotonic()
        if ranges:
            self.cycle.preserve_many(coalesce(ranges))
        self.stats['journal_seconds'] += time.monotonic() - started
        for kind, offset, length, digest, data in pending:
            self._apply(kind, offset, length, digest, data)
        self._pending = []
        self._pending_bytes = 0

    def _changed_pages(self, offset, data):
        """Pages of a whole-block DATA op that differ from what the target holds now (read back; zeros where the
        target is known zero): only those are journaled and written. A block that differs only in a few pages (the
        common case for digest and full plans over an existing replica) then costs a few pages of journal and
        writes instead of the whole block; the cost is one block read, which the journal needed anyway."""
        started = time.monotonic()
        length = len(data)
        if self.zero_known[offset // self.block_size]:
            if self._zero_block is None:
                self._zero_block = bytes(self.block_size)
            old = memoryview(self._zero_block)[:length]
        else:
            if self._scratch is None:
                self._scratch = bytearray(self.block_size)
            old = self._scratch if length == self.block_size else memoryview(self._scratch)[:length]
            self.target.preadinto(offset, old)
        changed = changed_ranges(old, data, page=DIFF_PAGE)
        self.stats['bytes_same_skipped'] += length - sum(n for _s, n in changed)
        self.stats['diff_seconds'] += time.monotonic() - started
        return changed

    def _nonzero_ranges(self, offset, length):
        bs = self.block_size
        out = []
        for i in range(offset // bs, (offset + length + bs - 1) // bs):
            if not self.zero_known[i]:
                start = i * bs
                out.append((start, min(bs, self.capacity - start)))
        return out

    def _apply(self, kind, offset, length, digest, data):
        if kind == 'data':
            self._write(offset, data, digest)
        elif kind == 'pages':
            self._write_pages(offset, data[0], data[1], digest)
        elif kind == 'piece':
            self._write(offset, data, None)
        elif kind == 'zero':
            self._zero(offset, length)
        elif kind == 'zero-piece':
            self._zero_piece(offset, length)
        else:
            self._copy(offset, length, digest, data[0], data[1])

    def _write(self, offset, data, digest):
        started = time.monotonic()
        self.target.pwrite(offset, data)
        self.stats['write_seconds'] += time.monotonic() - started
        self._book(offset, len(data), digest)

    def _book(self, offset, length, digest):
        """The maps and counters of `length` bytes written at offset (digest None: a piece of the block, whose
        digest is recomputed in finish())."""
        i = offset // self.block_size
        self.zero_known[i] = 0
        if digest is None:
            self._partial.add(i)
            self.stats['partial_ops'] += 1
        else:
            self._partial.discard(i)
            self.map.set(i, digest)
        self.stats['bytes_written'] += length

    def _write_pages(self, offset, data, changed, digest):
        """Whole-block DATA of which only the `changed` (start, length) runs differ from the target."""
        started = time.monotonic()
        view = memoryview(data)
        for start, n in changed:
            self.target.pwrite(offset + start, view[start:start + n])
            self.stats['bytes_written'] += n
        self.stats['write_seconds'] += time.monotonic() - started
        i = offset // self.block_size
        if changed:
            self.zero_known[i] = 0
        self._partial.discard(i)
        self.map.set(i, digest)

    def _zero_piece(self, offset, length):
        i = offset // self.block_size
        self.stats['partial_ops'] += 1
        if self.zero_known[i]:
            self.stats['bytes_zero_skipped'] += length
            return
        started = time.monotonic()
        self.target.write_zeroes(offset, length)
        self.stats['write_seconds'] += time.monotonic() - started
        self.stats['bytes_zeroed'] += length
        self._partial.add(i)

    def _rehash_partial(self):
        """Digest every block that received partial ops from the target itself, so the map stays exact."""
        if not self._partial:
            return
        started = time.monotonic()
        if self._scratch is None:
            self._scratch = bytearray(self.block_size)
        bs = self.block_size
        for i in sorted(self._partial):
            length = min(bs, self.capacity - i * bs)
            view = self._scratch if length == bs else memoryview(self._scratch)[:length]
            self.target.preadinto(i * bs, view)
            self.map.set(i, block_digest(view))
            self.stats['bytes_rehashed'] += length
        self._partial = set()
        self.stats['rehash_seconds'] += time.monotonic() - started

    def _zero(self, offset, length):
        bs = self.block_size
        todo = coalesce(self._nonzero_ranges(offset, length))
        started = time.monotonic()
        for start, n in todo:
            self.target.write_zeroes(start, n)
            self.stats['bytes_zeroed'] += n
        self.stats['write_seconds'] += time.monotonic() - started
        self.stats['bytes_zero_skipped'] += length - sum(n for _s, n in todo)
        for i in range(offset // bs, (offset + length + bs - 1) // bs):
            self.zero_known[i] = 1
            self._partial.discard(i)
            self.map.set(i, zero_digest(min(bs, self.capacity - i * bs)))

    def _copy(self, offset, length, digest, source, src_offset):
        if self._scratch is None:
            self._scratch = bytearray(self.block_size)
        view = self._scratch if length == self.block_size else memoryview(self._scratch)[:length]
        endpoint = self.target if source == 0 else self.sources[source]
        endpoint.preadinto(src_offset, view)
        if block_digest(view) != digest:
            self.need.append(offset)
            self.stats['copy_misses'] += 1
            return
        self._write(offset, view, digest)
        self.stats['bytes_copied'] += length

    # ---- end of cycle ---------------------------------------------------------------------------------------

    def finish(self, ops=None):
        """Apply what is pending; returns the NEED list (offsets of COPY blocks to resend as DATA)."""
        self._flush_batch()
        with self._direct_lock:
            self.stats['verify_seconds'] += self._direct_seconds[0]
            self.stats['write_seconds'] += self._direct_seconds[1]
            self._direct_seconds = [0.0, 0.0]
        if ops is not None and ops != self.ops:
            raise ReceiverError('the sender sent %d ops but %d arrived (truncated stream); nothing is committed'
                                % (ops, self.ops))
        self._rehash_partial()
        need, self.need = self.need, []
        return need

    def commit(self, change_id, meta=None, retention=None):
        """Commit digest map + change id (after every block is written; the store flushes the target first).

        retention (END info): None (keep every point), a number of points to keep, or {'keep': N, 'sealed': [ids]}
        where sealed lists the points the replica VM sealed, so the store counts sealed points (see
        store.replica_store.prune_start)."""
        keep, sealed = retention_policy(retention)
        if self._pending or self.need:
            raise ReceiverError('cannot commit: blocks are still pending or needed')
        if self.cycle is None:
            raise ReceiverError('no open cycle to commit')
        self.stats['bytes_journaled'] = self.cycle.bytes_journaled
        self.stats['ops'] = self.ops
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.stats['peak_rss_bytes'] = usage.ru_maxrss * 1024
        self.stats.setdefault('cpu', {})['process'] = usage.ru_utime + usage.ru_stime
        point = self.cycle.commit(change_id, self.map.to_bytes(), self.capacity, self.block_size, meta=meta,
                                  retention=keep, sealed=sealed)
        self.cycle = None
        return {'restore_point': point, 'change_id': change_id, 'stats': dict(self.stats)}

    def abort(self):
        """Roll back this cycle (journal replay). Safe to call at any time, also after a failure."""
        actions = []
        if self.cycle is not None:
            cycle, self.cycle = self.cycle, None
            try:
                actions = cycle.abort()
            except Exception as e:  # the next recover() finishes the job; report, do not mask the first error
                actions = ['abort failed (%s); the next run recovers the cycle' % e]
        return actions

    def close(self):
        for ep in list(self.sources.values()) + [self.target]:
            if ep is not None:
                try:
                    ep.close()
                except (EndpointError, OSError):
                    pass
        self.sources = {}
        self.target = None


class _ReadAhead(object):
    """Reader thread: parses frames off the stream into a few reusable block buffers and decodes DATA frames
    (checks, zstd decompress, xxh3 verify: Receiver.decode_data) while the caller's thread writes the previous ones
    (bounded: READ_AHEAD_FRAMES frames in flight). Only verified bytes ever reach the caller."""

    def __init__(self, reader, block_size, decode, depth=READ_AHEAD_FRAMES):
        self.reader = reader
        self.decode = decode
        self._free = queue.Queue()
        for _i in range(depth + 2):
            self._free.put(bytearray(block_size))
        self._frames = queue.Queue(maxsize=depth)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name='receiver-reader')
        self._thread.daemon = True
        self._thread.start()

    def _put(self, item):
        while not self._stop:
            try:
                self._frames.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            while not self._stop:
                buf = None
                while buf is None and not self._stop:
                    try:
                        buf = self._free.get(timeout=0.5)
                    except queue.Empty:
                        continue
                if buf is None:
                    return
                frame = self.reader.read_frame(into=buf)
                plain = None
                if frame is not None and frame.op == wire.DATA:
                    compressed = bool(frame.flags & wire.FLAG_ZSTD)
                    plain = self.decode(frame.offset, frame.length, frame.digest, frame.payload, compressed,
                                        bool(frame.flags & wire.FLAG_PARTIAL))
                    if compressed:      # the plain bytes are the decompressor's own: the buffer is free again
                        self._free.put(buf)
                        buf = None
                else:
                    self._free.put(buf)
                    buf = None
                if not self._put((frame, plain, buf)) or frame is None:
                    return
        except BaseException as e:  # handed to the caller's thread
            self._put((e, None, None))

    def cpu(self):
        """CPU seconds the reader thread has used so far (0.0 where per-thread clocks are not available)."""
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self._thread.ident))
        except (AttributeError, OSError, TypeError):
            return 0.0

    def get(self):
        """(frame or None at end of stream, the verified plain bytes of a DATA frame, buffer to give back with
        release())."""
        frame, plain, buf = self._frames.get()
        if isinstance(frame, BaseException):
            raise frame
        return frame, plain, buf

    def release(self, buf):
        if buf is not None:
            self._free.put(buf)

    def stop(self):
        self._stop = True
        self._thread.join(2)


def serve(rfile, wfd):
    """Remote receiver loop over the wire: rfile (binary, readinto) in, wfd (file descriptor) out. Returns an exit
    code: 0 committed, 1 failed (an ERROR frame was sent when possible)."""
    wire.widen_pipe(rfile)
    writer = wire.FrameWriter(wfd)
    reader = wire.FrameReader(rfile)
    rx = None
    ahead = None
    try:
        hello = reader.expect(wire.HELLO).json()
        rx = Receiver(allowed_roots=hello.get('allowed_roots'), batch_bytes=hello.get('batch_bytes') or DEFAULT_BATCH_BYTES)
        state, maps = rx.hello(hello)
        writer.json(wire.STATE, state)
        for sid in sorted(maps):
            writer.frame(wire.MAP, maps[sid].to_bytes(), source=sid)
        ahead = _ReadAhead(reader, rx.block_size, rx.decode_data)
        apply_cpu = time.thread_time()
        while True:
            f, plain, buf = ahead.get()
            if f is None:
                raise ReceiverError('stream truncated: the sender went away before END; nothing is committed')
            if f.op == wire.DATA:
                rx.store_data(f.offset, f.length, f.digest, plain, partial=bool(f.flags & wire.FLAG_PARTIAL),
                              copied=buf is None)
                ahead.release(buf)
            elif f.op == wire.ZERO:
                rx.apply_zero(f.offset, f.arg, f.digest, partial=bool(f.flags & wire.FLAG_PARTIAL))
            elif f.op == wire.COPY:
                rx.apply_copy(f.offset, f.length, f.digest, f.source, f.arg)
            elif f.op == wire.END:
                info = f.json()
                need = rx.finish(ops=info.get('ops'))
                if need:
                    writer.json(wire.NEED, {'blocks': need})
                    continue
                cpu = rx.stats.setdefault('cpu', {})
                cpu['apply'] = time.thread_time() - apply_cpu
                cpu['wire_read'] = ahead.cpu()
                result = rx.commit(info.get('change_id'), meta=info.get('meta'), retention=info.get('retention'))
                writer.json(wire.COMMIT, result)
                return 0
            elif f.op == wire.ERROR:
                raise ReceiverError('sender aborted: %s' % f.json().get('message'))
            else:
                raise wire.WireError('unexpected %s frame in the block stream' % f.name)
    except Exception as e:  # every failure must reach the sender as a message, and abort the cycle
        if rx is not None:
            rx.abort()
        try:
            writer.json(wire.ERROR, {'message': str(e) or e.__class__.__name__, 'type': e.__class__.__name__})
        except OSError:
            pass
        return 1
    finally:
        if ahead is not None:
            ahead.stop()
        if rx is not None:
            rx.close()
