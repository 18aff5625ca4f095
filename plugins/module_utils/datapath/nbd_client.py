# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure Python NBD client: one connection, several requests in flight.

Callers in any number of threads submit requests; a sender lock keeps each request (header + payload) contiguous on
the wire, and one receive thread reads replies and dispatches them by handle, reading READ payloads straight into the
caller's buffer (simple replies and structured OFFSET_DATA chunks alike)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import itertools
import socket
import threading

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import nbd_protocol as proto
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import Endpoint, EndpointError

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_IO_TIMEOUT = 300.0
DEFAULT_MAX_IN_FLIGHT = 32
BLOCK_STATUS_MAX = 1 << 30       # length asked for per NBD_CMD_BLOCK_STATUS
WRITE_ZEROES_MAX = 1 << 30       # length per NBD_CMD_WRITE_ZEROES
MAX_CHUNK_BODY = 64 * 1024 * 1024  # sanity bound on non-data structured chunk bodies
_ZEROS = bytes(1024 * 1024)


class _Request(object):
    __slots__ = ('handle', 'cmd', 'offset', 'length', 'view', 'done', 'error', 'covered', 'descriptors')

    def __init__(self, cmd, offset, length, view):
        self.handle = 0
        self.cmd = cmd
        self.offset = offset
        self.length = length
        self.view = view            # READ: writable memoryview of exactly `length` bytes
        self.done = threading.Event()
        self.error = None
        self.covered = 0            # READ over structured replies: bytes filled by data/hole chunks
        self.descriptors = None     # BLOCK_STATUS: list of (length, flags)

    def fail(self, message):
        if self.error is None:
            self.error = message


class _ConnectionLost(Exception):
    pass


def _zero_fill(view):
    pos = 0
    n = len(view)
    while pos < n:
        step = min(len(_ZEROS), n - pos)
        view[pos:pos + step] = _ZEROS[:step]
        pos += step


class NbdConnection(object):
    """One NBD connection after a successful handshake. Thread-safe; raises EndpointError."""

    def __init__(self, uri, connect_timeout=DEFAULT_CONNECT_TIMEOUT, io_timeout=DEFAULT_IO_TIMEOUT,
                 max_in_flight=DEFAULT_MAX_IN_FLIGHT):
        self.name = proto.safe_uri(uri)
        try:
            self.target = proto.parse_uri(uri)
        except ValueError as e:
            raise EndpointError('%s: %s' % (self.name, e))
        self.export = self.target['export']
        self.io_timeout = io_timeout
        self.size = 0
        self.flags = 0
        self.block_size = None
        self.structured = False
        self.meta_context_id = None
        self.protocol = ''
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pending = {}
        self._handles = itertools.count(1)
        self._broken = None
        self._closing = False
        self._thread = None
        self._sock = self._connect(connect_timeout)
        try:
            self._handshake()
        except EndpointError:
            self._sock.close()
            raise
        except (OSError, proto.NbdProtocolError, ValueError) as e:
            self._sock.close()
            raise EndpointError('%s: NBD handshake failed: %s; check that the URI points to an NBD server'
                                % (self.name, e))
        self._sock.settimeout(io_timeout)
        self._thread = threading.Thread(target=self._receive_loop, name='nbd-recv %s' % self.name)
        self._thread.daemon = True
        self._thread.start()

    # ---- connection setup ---------------------------------------------------------------------------------------

    def _connect(self, timeout):
        t = self.target
        if t['kind'] == 'unix':
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = t['socket']
        else:
            try:
                infos = socket.getaddrinfo(t['host'], t['port'], 0, socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise EndpointError('%s: cannot resolve host %s: %s' % (self.name, t['host'], e))
            family, _type, _proto, _cn, address = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except (OSError, socket.timeout) as e:
            sock.close()
            raise EndpointError('%s: cannot connect to the NBD server: %s; check that the server is running and '
                                'the host/port or socket path is right' % (self.name, e))
        if t['kind'] == 'tcp':
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _recv_exact(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        while pos < n:
            got = self._sock.recv_into(view[pos:])
            if not got:
                raise _ConnectionLost('the server closed the connection')
            pos += got
        return bytes(buf)

    def _send_option(self, option, payload=b''):
        self._sock.sendall(proto.pack_option(option, payload))

    def _option_reply(self, option):
        reply_type, length = proto.parse_option_reply_header(self._recv_exact(proto.OPTION_REPLY.size), option)
        return reply_type, self._recv_exact(length) if length else b''

    def _handshake(self):
        try:
            server_flags = proto.parse_handshake(self._recv_exact(proto.HANDSHAKE.size))
            self._sock.sendall(proto.client_flags(server_flags))
            no_zeroes = bool(server_flags & proto.FLAG_NO_ZEROES)
            self._negotiate_structured()
            if self.structured:
                self._negotiate_meta_context()
            if not self._go():
                self._export_name(no_zeroes)
        except _ConnectionLost as e:
            raise EndpointError('%s: the NBD server closed the connection during the handshake (%s); the export '
                                '"%s" may not exist or the server refused this client' % (self.name, e, self.export))
        except socket.timeout:
            raise EndpointError('%s: timed out during the NBD handshake; check the server' % self.name)
        self.protocol = 'newstyle-fixed, %s replies' % ('structured' if self.structured else 'simple')

    def _negotiate_structured(self):
        self._send_option(proto.OPT_STRUCTURED_REPLY)
        reply_type, _data = self._option_reply(proto.OPT_STRUCTURED_REPLY)
        self.structured = reply_type == proto.REP_ACK

    def _negotiate_meta_context(self):
        self._send_option(proto.OPT_SET_META_CONTEXT, proto.pack_meta_context(self.export, [proto.META_BASE_ALLOCATION]))
        for _i in range(1024):
            reply_type, data = self._option_reply(proto.OPT_SET_META_CONTEXT)
            if reply_type == proto.REP_META_CONTEXT:
                context_id, name = proto.parse_meta_context_reply(data)
                if name == proto.META_BASE_ALLOCATION:
                    self.meta_context_id = context_id
            elif reply_type == proto.REP_ACK or reply_type & proto.REP_FLAG_ERROR:
                return
            else:
                raise proto.NbdProtocolError('unexpected reply %d to SET_META_CONTEXT' % reply_type)
        raise proto.NbdProtocolError('too many replies to SET_META_CONTEXT')

    def _go(self):
        """NBD_OPT_GO; False when the server lacks it (then NBD_OPT_EXPORT_NAME is used)."""
        self._send_option(proto.OPT_GO, proto.pack_go(self.export, (proto.INFO_BLOCK_SIZE,)))
        have_export = False
        for _i in range(1024):
            reply_type, data = self._option_reply(proto.OPT_GO)
            if reply_type == proto.REP_INFO:
                info_type, info = proto.parse_info(data)
                if info_type == proto.INFO_EXPORT:
                    self.size, self.flags = info['size'], info['flags']
                    have_export = True
                elif info_type == proto.INFO_BLOCK_SIZE:
                    self.block_size = info
            elif reply_type == proto.REP_ACK:
                if not have_export:
                    raise proto.NbdProtocolError('server acknowledged NBD_OPT_GO without sending the export size')
                return True
            elif reply_type == proto.REP_ERR_UNSUP:
                return False
            elif reply_type & proto.REP_FLAG_ERROR:
                if reply_type == proto.REP_ERR_UNKNOWN:
                    raise EndpointError('%s: export "%s" not found on the NBD server; check the export name in the '
                                        'URI' % (self.name, self.export))
                raise EndpointError('%s: the NBD server refused export "%s": %s'
                                    % (self.name, self.export, proto.option_error_text(reply_type, data)))
            # other reply types (e.g. NBD_REP_SERVER) are ignored as the protocol allows
        raise proto.NbdProtocolError('too many replies to NBD_OPT_GO')

    def _export_name(self, no_zeroes):
        self.meta_context_id = None  # only valid together with NBD_OPT_GO
        self.structured = False
        raw = self.export.encode('utf-8')
        self._sock.sendall(proto.OPTION_HEADER.pack(proto.IHAVEOPT, proto.OPT_EXPORT_NAME, len(raw)) + raw)
        self.size, self.flags = proto.parse_export_name_reply(self._recv_exact(proto.EXPORT_NAME_REPLY.size))
        if not no_zeroes:
            self._recv_exact(124)

    # ---- properties ---------------------------------------------------------------------------------------------

    @property
    def read_only(self):
        return bool(self.flags & proto.TFLAG_READ_ONLY)

    def can(self, flag):
        return bool(self.flags & flag)

    @property
    def minimum(self):
        return self.block_size['minimum'] if self.block_size else 1

    @property
    def max_payload(self):
        return proto.max_payload(self.block_size)

    # ---- receive thread -----------------------------------------------------------------------------------------

    def _recv_into(self, view):
        pos = 0
        n = len(view)
        while pos < n:
            got = self._sock.recv_into(view[pos:], n - pos)
            if not got:
                raise _ConnectionLost('the server closed the connection')
            pos += got

    def _read_header(self):
        """First 4 bytes of the next reply; a timeout while idle just waits again."""
        buf = bytearray(4)
        view = memoryview(buf)
        pos = 0
        while pos < 4:
            try:
                got = self._sock.recv_into(view[pos:])
            except socket.timeout:
                with self._lock:
                    idle = not self._pending
                if pos == 0 and idle and not self._closing:
                    continue
                raise
            if not got:
                if pos == 0 and self._closing:
                    return None
                raise _ConnectionLost('the server closed the connection')
            pos += got
        return bytes(buf)

    def _lookup(self, handle):
        with self._lock:
            req = self._pending.get(handle)
        if req is None:
            raise proto.NbdProtocolError('reply for unknown handle %d' % handle)
        return req

    def _complete(self, req):
        with self._lock:
            mine = self._pending.pop(req.handle, None) is req
        req.done.set()
        if mine:
            self._slots.release()

    def _receive_loop(self):
        try:
            while True:
                magic = self._read_header()
                if magic is None:
                    break
                if proto.reply_magic(magic) == 'simple':
                    self._simple_reply(magic + self._recv_exact(12))
                else:
                    self._structured_chunk(self._recv_exact(proto.STRUCTURED_REST.size))
        except socket.timeout:
            self._break('no reply from the server within %ss' % self.io_timeout)
        except _ConnectionLost as e:
            self._break(str(e))
        except proto.NbdProtocolError as e:
            self._break('protocol error: %s' % e)
        except OSError as e:
            self._break('connection error: %s' % e)
        except Exception as e:  # pylint: disable=broad-except
            # never leave waiters hanging on a dead receive thread
            self._break('internal error in the NBD receive thread: %r' % e)
        if self._closing:
            self._break('connection closed')

    def _simple_reply(self, data):
        error, handle = proto.parse_simple_reply(data)
        req = self._lookup(handle)
        if error:
            req.fail(proto.error_text(error))
        elif req.cmd == proto.CMD_READ:
            self._recv_into(req.view)
        elif req.cmd == proto.CMD_BLOCK_STATUS:
            raise proto.NbdProtocolError('simple reply to a block status request')
        self._complete(req)

    def _structured_chunk(self, rest):
        flags, chunk_type, handle, length = proto.parse_structured_header(rest)
        req = self._lookup(handle)
        if chunk_type == proto.REPLY_TYPE_OFFSET_DATA:
            if req.cmd != proto.CMD_READ or length < 8:
                raise proto.NbdProtocolError('unexpected OFFSET_DATA chunk')
            start = proto.U64.unpack(self._recv_exact(8))[0] - req.offset
            n = length - 8
            if start < 0 or start + n > req.length:
                raise proto.NbdProtocolError('OFFSET_DATA chunk outside the requested range')
            self._recv_into(req.view[start:start + n])
            req.covered += n
        elif chunk_type == proto.REPLY_TYPE_OFFSET_HOLE:
            if req.cmd != proto.CMD_READ:
                raise proto.NbdProtocolError('unexpected OFFSET_HOLE chunk')
            hole_offset, n = proto.parse_hole(self._recv_exact(length))
            start = hole_offset - req.offset
            if start < 0 or start + n > req.length:
                raise proto.NbdProtocolError('OFFSET_HOLE chunk outside the requested range')
            _zero_fill(req.view[start:start + n])
            req.covered += n
        elif chunk_type == proto.REPLY_TYPE_BLOCK_STATUS:
            if req.cmd != proto.CMD_BLOCK_STATUS or length > MAX_CHUNK_BODY:
                raise proto.NbdProtocolError('unexpected BLOCK_STATUS chunk')
            context_id, descriptors = proto.parse_block_status(self._recv_exact(length))
            if context_id == self.meta_context_id:
                req.descriptors = descriptors
        elif chunk_type == proto.REPLY_TYPE_NONE:
            if length:
                raise proto.NbdProtocolError('NONE chunk with a payload')
        elif chunk_type & 0x8000:
            if length > MAX_CHUNK_BODY:
                raise proto.NbdProtocolError('error chunk too long')
            error, message, offset = proto.parse_error_chunk(self._recv_exact(length),
                                                             chunk_type == proto.REPLY_TYPE_ERROR_OFFSET)
            text = proto.error_text(error)
            if offset is not None:
                text += ' at offset %d' % offset
            if message:
                text += ': ' + message
            req.fail(text)
        else:
            raise proto.NbdProtocolError('unknown structured reply chunk type %d' % chunk_type)
        if flags & proto.REPLY_FLAG_DONE:
            if req.error is None and req.cmd == proto.CMD_READ and req.covered != req.length:
                req.fail('short read: the server returned %d of %d bytes' % (req.covered, req.length))
            if req.error is None and req.cmd == proto.CMD_BLOCK_STATUS and not req.descriptors:
                req.fail('the server returned no block status for base:allocation')
            self._complete(req)

    def _break(self, reason):
        with self._lock:
            if self._broken is None:
                self._broken = reason
            pending = list(self._pending.values())
            self._pending.clear()
        for req in pending:
            req.fail(reason)
            req.done.set()
            self._slots.release()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- requests -----------------------------------------------------------------------------------------------

    def submit(self, cmd, offset=0, length=0, flags=0, view=None, payload=None):
        """Send one request; returns the _Request to wait() for."""
        req = _Request(cmd, offset, length, view)
        while not self._slots.acquire(timeout=1.0):
            if self._broken is not None:
                raise EndpointError('%s: NBD connection lost: %s' % (self.name, self._broken))
        with self._lock:
            if self._broken is not None or self._closing:
                self._slots.release()
                raise EndpointError('%s: NBD connection %s' % (self.name, self._broken or 'is closing'))
            req.handle = next(self._handles)
            self._pending[req.handle] = req
        header = proto.pack_request(cmd, req.handle, offset, length, flags)
        try:
            with self._send_lock:
                if payload is None:
                    self._sock.sendall(header)
                else:
                    self._sock.sendall(header)
                    self._sock.sendall(payload)
        except (OSError, socket.timeout) as e:
            self._break('send failed: %s' % e)
        return req

    def wait(self, req):
        """Wait for a request; raise EndpointError when it failed."""
        if not req.done.wait(self.io_timeout * 2 + 5):
            self._break('request did not complete within %ss' % (self.io_timeout * 2 + 5))
            req.done.wait(5)
        if req.error is not None:
            what = proto.CMD_NAMES.get(req.cmd, 'command %d' % req.cmd)
            raise EndpointError('%s: NBD %s of %d bytes at offset %d failed: %s'
                                % (self.name, what, req.length, req.offset, req.error))
        return req

    def run_all(self, requests):
        """Submit (cmd, offset, length, flags, view, payload) tuples pipelined, then wait for all."""
        sent = []
        first_error = None
        for args in requests:
            try:
                sent.append(self.submit(*args))
            except EndpointError as e:
                first_error = e
                break
        for req in sent:
            try:
                self.wait(req)
            except EndpointError as e:
                if first_error is None:
                    first_error = e
        if first_error is not None:
            raise first_error
        return sent

    def close(self):
        """Send NBD_CMD_DISC (after in-flight requests finish), stop the receive thread, close the socket."""
        if self._closing:
            return
        with self._lock:
            inflight = list(self._pending.values())
        for req in inflight:
            req.done.wait(self.io_timeout)
        self._closing = True
        if self._broken is None:
            try:
                with self._send_lock:
                    self._sock.sendall(proto.pack_request(proto.CMD_DISC, 0))
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._thread.join(5.0)
        self._sock.close()


class NbdEndpoint(Endpoint):
    """Endpoint over an NBD export (nbd://host[:port]/export or nbd+unix:///export?socket=/path).

    writable: None = as the export allows; True = require a writable export; False = refuse writes locally."""

    def __init__(self, uri, writable=None, connect_timeout=DEFAULT_CONNECT_TIMEOUT, io_timeout=DEFAULT_IO_TIMEOUT,
                 max_in_flight=DEFAULT_MAX_IN_FLIGHT):
        self.conn = NbdConnection(uri, connect_timeout=connect_timeout, io_timeout=io_timeout,
                                  max_in_flight=max_in_flight)
        self.name = self.conn.name
        self.size = self.conn.size
        if writable and self.conn.read_only:
            self.conn.close()
            raise EndpointError('%s: the NBD export is read-only but this transfer needs to write to it; export it '
                                'writable (e.g. without -r / --readonly)' % self.name)
        self.writable = (not self.conn.read_only) if writable is None else bool(writable)

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _check_range(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise EndpointError('%s: range [%d, %d) is outside the export (size %d)'
                                % (self.name, offset, offset + length, self.size))

    def _check_writable(self):
        if not self.writable:
            raise EndpointError('%s: the NBD export is read-only; writes are refused' % self.name)

    def _aligned(self, offset, length):
        m = self.conn.minimum
        return offset % m == 0 and length % m == 0

    # ---- Endpoint API -------------------------------------------------------------------------------------------

    def preadinto(self, offset, buf):
        view = memoryview(buf).cast('B')
        if view.readonly:
            raise EndpointError('%s: preadinto needs a writable buffer (bytearray, mmap or writable memoryview)'
                                % self.name)
        length = len(view)
        self._check_range(offset, length)
        if not length:
            return
        if not self._aligned(offset, length):
            start, alen = proto.align_range(offset, length, self.conn.minimum)
            alen = min(alen, self.size - start)
            bounce = bytearray(alen)
            self._read(start, memoryview(bounce))
            view[:] = memoryview(bounce)[offset - start:offset - start + length]
            return
        self._read(offset, view)

    def _read(self, offset, view):
        chunk = self.conn.max_payload
        self.conn.run_all([(proto.CMD_READ, off, n, 0, view[off - offset:off - offset + n], None)
                           for off, n in proto.split_range(offset, len(view), chunk)])

    def pwrite(self, offset, data, fua=False):
        self._check_writable()
        view = memoryview(data).cast('B')
        length = len(view)
        self._check_range(offset, length)
        if not length:
            return
        if not self._aligned(offset, length):
            raise EndpointError('%s: write of %d bytes at offset %d is not aligned to the %d-byte minimum block size '
                                'the NBD server requires' % (self.name, length, offset, self.conn.minimum))
        flags = proto.CMD_FLAG_FUA if fua and self.conn.can(proto.TFLAG_SEND_FUA) else 0
        self.conn.run_all([(proto.CMD_WRITE, off, n, flags, None, view[off - offset:off - offset + n])
                           for off, n in proto.split_range(offset, length, self.conn.max_payload)])

    def write_zeroes(self, offset, length):
        self._check_writable()
        self._check_range(offset, length)
        if not length:
            return
        if not self._aligned(offset, length):
            raise EndpointError('%s: zeroing %d bytes at offset %d is not aligned to the %d-byte minimum block size '
                                'the NBD server requires' % (self.name, length, offset, self.conn.minimum))
        if self.conn.can(proto.TFLAG_SEND_WRITE_ZEROES):
            step = WRITE_ZEROES_MAX - WRITE_ZEROES_MAX % self.conn.minimum
            self.conn.run_all([(proto.CMD_WRITE_ZEROES, off, n, 0, None, None)
                               for off, n in proto.split_range(offset, length, step)])
            return
        step = min(self.conn.max_payload, len(_ZEROS))
        step -= step % self.conn.minimum
        zeros = memoryview(_ZEROS)
        self.conn.run_all([(proto.CMD_WRITE, off, n, 0, None, zeros[:n])
                           for off, n in proto.split_range(offset, length, step)])

    def flush(self):
        if self.conn.can(proto.TFLAG_SEND_FLUSH) and not self.conn.read_only:
            self.conn.wait(self.conn.submit(proto.CMD_FLUSH))

    def extents(self, offset, length):
        self._check_range(offset, length)
        if self.conn.meta_context_id is None:
            if length:
                yield (offset, length, False)
            return
        pos = offset
        end = offset + length
        pending = None
        step = BLOCK_STATUS_MAX - BLOCK_STATUS_MAX % self.conn.minimum
        while pos < end:
            n = min(step, end - pos)
            req = self.conn.wait(self.conn.submit(proto.CMD_BLOCK_STATUS, pos, n))
            got = proto.descriptors_to_extents(pos, n, req.descriptors)
            for ext in got:
                if pending and pending[2] == ext[2]:
                    pending = (pending[0], pending[1] + ext[1], pending[2])
                else:
                    if pending:
                        yield pending
                    pending = ext
            pos = got[-1][0] + got[-1][1]
        if pending:
            yield pending

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def describe(self):
        """Negotiated properties, for logs and results."""
        c = self.conn
        return {'name': self.name, 'size': self.size, 'writable': self.writable, 'protocol': c.protocol,
                'block_size': c.block_size, 'max_payload': c.max_payload,
                'block_status': c.meta_context_id is not None,
                'can_flush': c.can(proto.TFLAG_SEND_FLUSH), 'can_fua': c.can(proto.TFLAG_SEND_FUA),
                'can_zero': c.can(proto.TFLAG_SEND_WRITE_ZEROES)}
