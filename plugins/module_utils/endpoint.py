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

import ctypes
import errno
import os
import stat
import threading

from urllib.parse import unquote, urlsplit

from ansible_collections.replicator.vsphere.plugins.module_utils import vmdk

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
ZERO_CHUNK = 1024 * 1024
_ZEROS = bytes(ZERO_CHUNK)
DESCRIPTOR_MAX = 1024 * 1024
NBD_SCHEMES = ('nbd', 'nbds', 'nbd+unix', 'nbds+unix', 'nbd+tcp', 'nbds+tcp')
# Start write-back of what was written every this many bytes (measured: 8 MiB 1.25 s, 2 MiB 1.05 s, 512 KiB 0.95 s
# for a durable 1 GiB copy), so the final fsync has little left to do.
WRITEBACK_BYTES = 512 * 1024
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
    # True where concurrent pwrite() calls only queue up inside the kernel: callers writing from several threads
    # then take turns in user space instead (a waiting thread sleeps rather than spins)
    serial_writes = False

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


class FileEndpoint(Endpoint):
    """A flat file or block device, optionally a window [base, base+size) of it (a VMDK FLAT extent offset).

    Write-behind: every `writeback_bytes` written, write-out of the dirty range written since the last kick is
    started (sync_file_range SYNC_FILE_RANGE_WRITE) by a helper thread, so the final flush() (fsync) finds little
    left, disk writes overlap with the copy, and a congested device queue never stalls the writing thread.
    0 disables it.

    serial_writes: buffered writes to one file serialize on its inode lock (ext4), where a second writer spins on
    the owner and burns the core the other threads need.

    Drop-behind (drop_behind, with write-behind): once the range kicked before is on the disk (the helper waits
    for it, not the writer), its pages leave the page cache (POSIX_FADV_DONTNEED). A replica disk written through
    the cache otherwise fills the proxy's memory with pages nobody reads again; and here keeping them was the
    slow part: the same 533 MiB copy took 0.35-0.50 s with drop-behind and 0.4-1.6 s without (writes into a page
    cache that keeps growing cost up to 5x the CPU). Readers of the target (journal, page diff, rehash) still see
    the data: from the disk instead of the cache."""

    serial_writes = True

    def __init__(self, path, writable=False, base=0, size=None, name=None, writeback_bytes=WRITEBACK_BYTES,
                 drop_behind=True):
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
        self.writeback_bytes = int(writeback_bytes or 0) if _SYNC_FILE_RANGE is not None else 0
        self.writeback_kicks = 0
        self.drop_behind = bool(drop_behind) and _FADV_DONTNEED is not None
        self.bytes_dropped = 0
        self._wb_cond = threading.Condition(threading.Lock())
        self._wb_thread = None
        self._wb_range = None
        self._dirty = 0
        self._dirty_lo = None
        self._dirty_hi = 0

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
        n = len(view)
        self._check(offset, n)
        pos = 0
        while pos < n:
            try:
                got = os.preadv(self.fd, [view[pos:]], self.base + offset + pos)
            except OSError as e:
                raise EndpointError('%s: read of %d bytes at offset %d failed: %s'
                                    % (self.name, n - pos, offset + pos, e.strerror or e))
            if got <= 0:
                raise EndpointError('%s: short read at offset %d (file shrank?)' % (self.name, offset + pos))
            pos += got

    def pwrite(self, offset, data):
        self._check_writable()
        view = memoryview(data).cast('B')
        n = len(view)
        self._check(offset, n)
        pos = 0
        while pos < n:
            try:
                done = os.pwrite(self.fd, view[pos:], self.base + offset + pos)
            except OSError as e:
                raise EndpointError('%s: write of %d bytes at offset %d failed: %s'
                                    % (self.name, n - pos, offset + pos, e.strerror or e))
            if done <= 0:
                raise EndpointError('%s: write at offset %d made no progress' % (self.name, offset + pos))
            pos += done
        if self.writeback_bytes:
            self._written(self.base + offset, n)

    def _written(self, start, n):
        """Account n dirty bytes at file offset start; past the threshold, hand the range to the write-behind
        thread (never waits for the disk)."""
        with self._wb_cond:
            self._dirty += n
            lo = start if self._dirty_lo is None else min(self._dirty_lo, start)
            hi = max(self._dirty_hi, start + n)
            if self._dirty < self.writeback_bytes:
                self._dirty_lo, self._dirty_hi = lo, hi
                return
            self._dirty, self._dirty_lo, self._dirty_hi = 0, None, 0
            if self._wb_range is not None:      # the thread is still busy: widen what it does next
                lo, hi = min(lo, self._wb_range[0]), max(hi, self._wb_range[1])
            self._wb_range = (lo, hi)
            if self._wb_thread is None:
                self._wb_thread = threading.Thread(target=self._writeback, name='write-behind')
                self._wb_thread.daemon = True
                self._wb_thread.start()
            self._wb_cond.notify()

    def _writeback(self):
        kicked = None       # the range whose write-out was started last: dropped from the cache once it is done
        while True:
            with self._wb_cond:
                while self._wb_range is None and self.fd >= 0 and self.writeback_bytes:
                    self._wb_cond.wait()
                if self.fd < 0 or not self.writeback_bytes:
                    return
                (lo, hi), self._wb_range = self._wb_range, None
                fd = self.fd
            # ctypes releases the GIL: this may block on a busy device without holding anything up
            if _SYNC_FILE_RANGE(fd, lo, hi - lo, SYNC_FILE_RANGE_WRITE) != 0:
                self.writeback_bytes = 0    # only a hint (e.g. not supported here): the final fsync makes it durable
                continue
            self.writeback_kicks += 1
            if self.drop_behind and kicked is not None:
                self._drop(fd, kicked)
            kicked = (lo, hi)

    def _drop(self, fd, span):
        """Wait for the write-out of span (started one kick ago) and drop its clean pages from the page cache."""
        lo, hi = span
        try:
            if _SYNC_FILE_RANGE(fd, lo, hi - lo, SYNC_FILE_RANGE_WAIT_BEFORE) == 0:
                os.posix_fadvise(fd, lo, hi - lo, _FADV_DONTNEED)
                self.bytes_dropped += hi - lo
        except OSError:     # the descriptor was closed under us, or fadvise is refused: the cache keeps the pages
            self.drop_behind = False

    def _stop_writeback(self):
        thread = self._wb_thread
        if thread is None:
            return
        with self._wb_cond:
            self.writeback_bytes = 0
            self._wb_range = None
            self._wb_cond.notify()
        thread.join(60)
        self._wb_thread = None

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
        self._stop_writeback()
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
        from ansible_collections.replicator.vsphere.plugins.module_utils.nbd_client import NbdEndpoint
        try:
            return NbdEndpoint(spec, writable=True if writable else False)
        except EndpointError:
            raise
        except (OSError, ValueError) as e:
            raise EndpointError('%s: cannot open the NBD export: %s' % (spec, e))
    if scheme == 'file':
        parts = urlsplit(spec)
        if parts.netloc not in ('', 'localhost'):
            raise EndpointError('%s: only local file:// URIs are supported' % spec)
        return _open_path(unquote(parts.path), writable, allowed_roots)
    if scheme:
        raise EndpointError('%s: unsupported endpoint scheme %r (use a path, file://, nbd:// or nbd+unix://)'
                            % (spec, scheme))
    return _open_path(spec, writable, allowed_roots)
