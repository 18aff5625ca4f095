# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk endpoints: the byte-addressed sources and targets the data mover reads and writes.

`Endpoint` is the interface (see docs/wire-format.md and the module_utils contract); `FileEndpoint` serves flat files
and block devices with positional I/O on one descriptor (safe for concurrent calls from several threads);
`open_endpoint()` turns a user-supplied spec (path, VMDK descriptor, file:// or nbd URI) into an endpoint.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import collections
import ctypes
import errno
import os
import stat
import threading

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import vmdk

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
ZERO_CHUNK = 1024 * 1024
_ZEROS = bytes(ZERO_CHUNK)
DESCRIPTOR_MAX = 1024 * 1024
NBD_SCHEMES = ('nbd', 'nbds', 'nbd+unix', 'nbds+unix', 'nbd+tcp', 'nbds+tcp')
# Write-behind (FileEndpoint): start the write-out of every WRITEBACK_BYTES written, keep at most WRITEBACK_WINDOW
# of started write-out in flight. Full local copy of a 1 GiB image, medians of 6 interleaved rounds, nbdcopy --flush
# time / mover time (docs/performance.md, run H): kick 1 MiB + window 32 MiB 1.16x, 16 MiB 1.11x, 64 MiB 1.09x,
# 4 MiB 0.86x; kick 512 KiB + window 8 MiB 0.97x; kick 4 MiB + window 32 MiB 1.01x; the previous helper thread that
# waited for the range kicked just before it (512 KiB kicks) 0.94x.
WRITEBACK_BYTES = 1024 * 1024
WRITEBACK_WINDOW = 32 * 1024 * 1024
# Writes of at least this size allocate their blocks first (FileEndpoint._preallocate): whole blocks of a full copy.
# Smaller ones (CBT pieces, journaled pages) write plainly: a fallocate per 64 KiB piece cost a 2% CBT cycle 13 ms.
PREALLOCATE_MIN = 256 * 1024
SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
_FADV_DONTNEED = getattr(os, 'POSIX_FADV_DONTNEED', None)


class EndpointError(Exception):
    """An endpoint cannot be opened or an I/O failed; the message names the endpoint and what to do."""


class Endpoint(object):
    """Interface of a disk endpoint. Offsets and lengths are bytes."""

    size = 0
    writable = False
    name = ''

    def preadinto(self, offset, buf):
        """Fill all of buf (writable buffer) with the bytes at offset; EndpointError on short read or I/O error."""
        raise NotImplementedError

    def pwrite(self, offset, data):
        """Write all of data (bytes-like) at offset."""
        raise NotImplementedError

    def write_zeroes(self, offset, length):
        """Afterwards [offset, offset+length) reads back as zeros."""
        raise NotImplementedError

    def flush(self):
        """Make written data durable."""

    def extents(self, offset, length):
        """Yield (offset, length, is_zero) covering the range; is_zero only where the endpoint KNOWS it reads zeros."""
        if length:
            yield (offset, length, False)

    def close(self):
        """Release the endpoint."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _load_libc(name, argtypes):
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own libc: no ctypes.util search at start-up
        func = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    func.argtypes = argtypes
    func.restype = ctypes.c_int
    return func


_FALLOCATE = _load_libc('fallocate', [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64])
_SYNC_FILE_RANGE = _load_libc('sync_file_range', [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
_FSTATFS = _load_libc('fstatfs', [ctypes.c_int, ctypes.c_void_p])
# File systems whose writes get cheaper with their blocks allocated first (FileEndpoint._preallocate): ext4 and XFS
# (delayed allocation), tmpfs. Not NFS (one synchronous ALLOCATE round trip per block), not btrfs (copy-on-write
# allocates anew on the write).
PREALLOCATE_FS = frozenset((0xEF53, 0x58465342, 0x01021994))


def _fs_type(fd):
    """The file system magic (statfs f_type) of an open descriptor, or None."""
    if _FSTATFS is None:
        return None
    buf = ctypes.create_string_buffer(256)     # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if _FSTATFS(fd, buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _preadv(fd, view, offset):
    return os.preadv(fd, [view], offset)


class FileEndpoint(Endpoint):
    """A flat file or block device, optionally a window [base, base+size) of it (a VMDK FLAT extent offset).

    pwrite() is safe from several threads: writes to one file take turns on a lock in user space. Buffered writes
    to one file serialize on its inode lock anyway (ext4), where a second writer spins on the owner and burns the
    core the other threads need; here the one waiting sleeps.

    Write-behind: the writer itself starts the write-out (sync_file_range SYNC_FILE_RANGE_WRITE) of each contiguous
    run of written bytes once it reaches `writeback_bytes`, or as soon as a write lands elsewhere (scattered CBT
    pieces: each run on its own, never one span across the disk), so disk writes overlap with the copy and the final
    flush() (fsync) finds little left. At most `writeback_window` bytes of started write-out stay in flight: past it,
    the writer waits for the oldest run to reach the disk (outside the lock, so another thread writes meanwhile).
    That bounds the dirty pages like nbdcopy's window does, and a window of 16-32 MiB keeps the device queue full (a
    few MiB left this virtio disk idle between requests). writeback_bytes 0 disables write-behind.

    Preallocation: on ext4, XFS and tmpfs (PREALLOCATE_FS), a write of at least PREALLOCATE_MIN bytes to a regular
    file allocates its blocks first (fallocate, KEEP_SIZE): ext4 then skips its delayed allocation (40% less CPU in
    pwrite for a fresh replica), and a block that does not fit is refused with ENOSPC before any byte of it is
    written. Never-written ranges stay holes. Elsewhere, or where fallocate is refused, writes allocate as they go.

    Drop-behind (drop_behind, with write-behind): a range whose write-out finished leaves the page cache
    (POSIX_FADV_DONTNEED). A replica disk written through the cache otherwise fills the proxy's memory with pages
    nobody reads again; and here keeping them was the slow part: writes into a page cache that keeps growing cost up
    to 5x the CPU, while pages dropped and reused are cheap. Readers of the target (journal, page diff, rehash) still
    see the data: from the disk instead of the cache."""

    def __init__(self, path, writable=False, base=0, size=None, name=None, writeback_bytes=WRITEBACK_BYTES,
                 drop_behind=True, writeback_window=WRITEBACK_WINDOW):
        self.path = path
        self.name = name or path
        self.writable = bool(writable)
        self.base = base
        flags = (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, 'O_CLOEXEC', 0)
        try:
            self.fd = os.open(path, flags)
        except OSError as e:
            raise EndpointError('%s: cannot open %s: %s' % (self.name, 'for writing' if writable else 'for reading',
                                                            e.strerror or e))
        try:
            st = os.fstat(self.fd)
            self.is_block_device = stat.S_ISBLK(st.st_mode)
            if self.is_block_device:
                total = os.lseek(self.fd, 0, os.SEEK_END)
            elif stat.S_ISREG(st.st_mode):
                total = st.st_size
            else:
                raise EndpointError('%s: not a regular file or block device' % self.name)
            if size is None:
                size = total - base
            if base < 0 or size < 0 or base + size > total:
                raise EndpointError('%s: the disk needs %d bytes at offset %d but the file holds only %d'
                                    % (self.name, size, base, total))
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        self.size = size
        self._punch = (_FALLOCATE is not None and not self.is_block_device)
        self._prealloc = self._punch and self.writable and _fs_type(self.fd) in PREALLOCATE_FS
        self.writeback_bytes = int(writeback_bytes or 0) if _SYNC_FILE_RANGE is not None else 0
        self.writeback_kicks = 0
        self.drop_behind = bool(drop_behind) and _FADV_DONTNEED is not None
        self.bytes_dropped = 0
        self.writeback_window = max(int(writeback_window or 0), self.writeback_bytes)
        self._write_lock = threading.Lock()
        self._count_lock = threading.Lock()     # bytes_dropped from several retiring writers, without waiting on a write
        self._inflight = collections.deque()     # kicked (lo, hi) ranges, oldest first
        self._inflight_bytes = 0
        self._run = None        # (lo, hi): the contiguous range written since the last kick

    def _check(self, offset, length):
        if self.fd < 0:
            raise EndpointError('%s: endpoint is closed' % self.name)
        if offset < 0 or length < 0 or offset + length > self.size:
            raise EndpointError('%s: range [%d, %d) is outside the disk (size %d)'
                                % (self.name, offset, offset + length, self.size))

    def _check_writable(self):
        if not self.writable:
            raise EndpointError('%s: opened read-only; writes are refused' % self.name)

    def preadinto(self, offset, buf):
        view = memoryview(buf).cast('B')
        self._check(offset, len(view))
        self._whole(_preadv, view, offset, 'read', 'short read at offset %d (file shrank?)')

    def _whole(self, call, view, offset, what, stalled):
        """Positional I/O over all of view at offset: call(fd, view, file offset) -> bytes done, repeated on what
        is left; EndpointError naming the range on an error, `stalled` % offset when a call makes no progress."""
        n = len(view)
        pos = 0
        while pos < n:
            try:
                done = call(self.fd, view[pos:], self.base + offset + pos)
            except OSError as e:
                raise EndpointError('%s: %s of %d bytes at offset %d failed: %s'
                                    % (self.name, what, n - pos, offset + pos, e.strerror or e))
            if done <= 0:
                raise EndpointError('%s: %s' % (self.name, stalled % (offset + pos)))
            pos += done

    def pwrite(self, offset, data):
        self._check_writable()
        view = memoryview(data).cast('B')
        n = len(view)
        self._check(offset, n)
        with self._write_lock:
            if self._prealloc and n >= PREALLOCATE_MIN:
                self._preallocate(offset, n)
            self._whole(os.pwrite, view, offset, 'write', 'write at offset %d made no progress')
            landed = self._written(self.base + offset, n) if self.writeback_bytes else None
        if landed:
            self._retire(landed)

    def _preallocate(self, offset, n):
        """Allocate the blocks of a range before writing it (fallocate, KEEP_SIZE; a no-op where they exist).
        Writing into allocated blocks skips ext4's delayed allocation: a full copy into a fresh replica took 40% less
        CPU in pwrite. Holes the copy never writes stay holes."""
        if _FALLOCATE(self.fd, FALLOC_FL_KEEP_SIZE, self.base + offset, n) == 0:
            return
        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EDQUOT):
            raise EndpointError('%s: no space left to write %d bytes at offset %d (%s); free space on the datastore '
                                'or move the replica' % (self.name, n, offset, os.strerror(err)))
        self._prealloc = False      # not supported here (EOPNOTSUPP, ...): plain writes allocate as they go

    def _written(self, start, n):
        """Account a write of n bytes at file offset start (under the write lock). Write-out is started per
        contiguous run of written bytes: when the run reaches writeback_bytes, or when a write lands elsewhere (the
        run so far is started then). Returns the oldest started ranges beyond the window, for _retire()."""
        run = self._run
        landed = []
        if run is not None and run[1] == start:
            run = (run[0], start + n)
        else:
            if run is not None:
                landed += self._kick(run)
            run = (start, start + n)
        if run[1] - run[0] >= self.writeback_bytes:
            landed += self._kick(run)
            run = None
        self._run = run
        return landed

    def _kick(self, span):
        """Start the write-out of span; returns the oldest started ranges beyond the window."""
        lo, hi = span
        if _SYNC_FILE_RANGE(self.fd, lo, hi - lo, SYNC_FILE_RANGE_WRITE) != 0:
            self.writeback_bytes = 0    # only a hint (e.g. not supported here): the final fsync makes it durable
            return []
        self.writeback_kicks += 1
        self._inflight.append(span)
        self._inflight_bytes += hi - lo
        out = []
        while self._inflight_bytes > self.writeback_window:
            oldest = self._inflight.popleft()
            self._inflight_bytes -= oldest[1] - oldest[0]
            out.append(oldest)
        return out

    def _retire(self, spans):
        """Wait for the write-out of kicked ranges, then drop their clean pages from the page cache (drop_behind).
        Runs outside the write lock: another thread writes meanwhile."""
        for lo, hi in spans:
            try:
                if _SYNC_FILE_RANGE(self.fd, lo, hi - lo, SYNC_FILE_RANGE_WAIT_BEFORE) != 0 or not self.drop_behind:
                    continue
                os.posix_fadvise(self.fd, lo, hi - lo, _FADV_DONTNEED)
            except OSError:     # fadvise refused: the cache keeps the pages
                self.drop_behind = False
                continue
            with self._count_lock:
                self.bytes_dropped += hi - lo

    def write_zeroes(self, offset, length):
        self._check_writable()
        self._check(offset, length)
        if not length:
            return
        if self._punch:
            rc = _FALLOCATE(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, self.base + offset, length)
            if rc == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTTY):
                raise EndpointError('%s: punching a hole at [%d, %d) failed: %s'
                                    % (self.name, offset, offset + length, os.strerror(err)))
            self._punch = False
        zeros = memoryview(_ZEROS)
        pos = 0
        while pos < length:
            step = min(ZERO_CHUNK, length - pos)
            self.pwrite(offset + pos, zeros[:step])
            pos += step

    def flush(self):
        if self.fd >= 0 and self.writable:
            try:
                os.fsync(self.fd)
            except OSError as e:
                raise EndpointError('%s: fsync failed: %s' % (self.name, e.strerror or e))

    def extents(self, offset, length):
        self._check(offset, length)
        if not length:
            return
        if self.is_block_device or not hasattr(os, 'SEEK_DATA'):
            yield (offset, length, False)
            return
        pos = self.base + offset
        end = pos + length
        while pos < end:
            try:
                data = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:      # no data after pos: hole up to the end of the file
                    yield (pos - self.base, end - pos, True)
                    return
                if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                    yield (pos - self.base, end - pos, False)
                    return
                raise EndpointError('%s: SEEK_DATA failed: %s' % (self.name, e.strerror or e))
            if data > pos:
                hole_end = min(data, end)
                yield (pos - self.base, hole_end - pos, True)
                pos = hole_end
                if pos >= end:
                    return
            hole = os.lseek(self.fd, pos, os.SEEK_HOLE)
            data_end = min(hole, end)
            yield (pos - self.base, data_end - pos, False)
            pos = data_end

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _inside(path, roots):
    real = os.path.realpath(path)
    for root in roots:
        r = os.path.realpath(root)
        if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


def _check_roots(path, allowed_roots, shown):
    if allowed_roots is not None and not _inside(path, allowed_roots):
        raise EndpointError('%s resolves to %s, outside the allowed directories (%s); writes are refused there'
                            % (shown, os.path.realpath(path), ', '.join(allowed_roots) or 'none'))


def _open_path(path, writable, allowed_roots):
    if writable:
        _check_roots(path, allowed_roots, path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise EndpointError('%s: %s' % (path, e.strerror or e))
    head = b''
    if stat.S_ISREG(st.st_mode):
        try:
            with open(path, 'rb') as f:
                head = f.read(DESCRIPTOR_MAX if st.st_size <= DESCRIPTOR_MAX else 64)
        except OSError as e:
            raise EndpointError('%s: cannot read: %s' % (path, e.strerror or e))
    kind = vmdk.sparse_kind(head)
    if kind:
        raise EndpointError('%s is a %s VMDK, not a flat disk: %s' % (path, kind, vmdk.NBD_HINT))
    if not (st.st_size <= DESCRIPTOR_MAX and vmdk.looks_like_descriptor(head)):
        return FileEndpoint(path, writable=writable)
    try:
        desc = vmdk.parse_descriptor(head.decode('utf-8', 'replace'))
        extent = vmdk.flat_extent(desc, name=path)
    except vmdk.VmdkError as e:
        raise EndpointError(str(e))
    if writable and extent.access != 'RW':
        raise EndpointError('%s: the flat extent is %s; it cannot be written' % (path, extent.access))
    flat = extent.filename
    if not os.path.isabs(flat):
        flat = os.path.join(os.path.dirname(os.path.abspath(path)), flat)
    if writable:
        _check_roots(flat, allowed_roots, '%s (extent of %s)' % (flat, path))
    return FileEndpoint(flat, writable=writable, base=extent.offset, size=extent.size, name=path)


def open_endpoint(spec, writable=False, allowed_roots=None):
    """Open a disk endpoint from a spec.

    spec: a path (flat file, block device, VMDK text descriptor -> its flat extent), `file:///path`,
    `nbd://host[:port]/export` or `nbd+unix:///export?socket=/path`. allowed_roots: directories a writable file
    must resolve inside (None = no restriction)."""
    if not isinstance(spec, str) or not spec:
        raise EndpointError('endpoint spec must be a non-empty string, got %r' % (spec,))
    scheme = spec.split('://', 1)[0].lower() if '://' in spec else ''
    if scheme in NBD_SCHEMES:
        from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.nbd_client import NbdEndpoint
        try:
            return NbdEndpoint(spec, writable=True if writable else False)
        except EndpointError:
            raise
        except (OSError, ValueError) as e:
            raise EndpointError('%s: cannot open the NBD export: %s' % (spec, e))
    if scheme == 'file':
        from urllib.parse import unquote, urlsplit     # here, not at the top: ~2 ms of every receiver start
        parts = urlsplit(spec)
        if parts.netloc not in ('', 'localhost'):
            raise EndpointError('%s: only local file:// URIs are supported' % spec)
        return _open_path(unquote(parts.path), writable, allowed_roots)
    if scheme:
        raise EndpointError('%s: unsupported endpoint scheme %r (use a path, file://, nbd:// or nbd+unix://)'
                            % (spec, scheme))
    return _open_path(spec, writable, allowed_roots)
