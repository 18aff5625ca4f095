# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure NBD protocol pieces: constants, packing and parsing of the newstyle fixed handshake, options, requests,
simple and structured replies and block status descriptors. No sockets, no threads: everything here works on bytes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import struct

from urllib.parse import urlsplit, unquote, parse_qs

DEFAULT_PORT = 10809

# Handshake
NBDMAGIC = 0x4e42444d41474943          # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054          # "IHAVEOPT"
OLDSTYLE_MAGIC = 0x00420281861253
REPLY_MAGIC_OPT = 0x0003e889045565a9

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
FLAG_C_FIXED_NEWSTYLE = 1 << 0
FLAG_C_NO_ZEROES = 1 << 1

# Options
OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

# Option replies
REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_FLAG_ERROR = 1 << 31
REP_ERR_UNSUP = REP_FLAG_ERROR | 1
REP_ERR_POLICY = REP_FLAG_ERROR | 2
REP_ERR_INVALID = REP_FLAG_ERROR | 3
REP_ERR_PLATFORM = REP_FLAG_ERROR | 4
REP_ERR_TLS_REQD = REP_FLAG_ERROR | 5
REP_ERR_UNKNOWN = REP_FLAG_ERROR | 6
REP_ERR_SHUTDOWN = REP_FLAG_ERROR | 7
REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR | 8
REP_ERR_TOO_BIG = REP_FLAG_ERROR | 9

REP_ERROR_NAMES = {
    REP_ERR_UNSUP: 'option not supported by the server',
    REP_ERR_POLICY: 'refused by server policy',
    REP_ERR_INVALID: 'invalid option',
    REP_ERR_PLATFORM: 'not supported on the server platform',
    REP_ERR_TLS_REQD: 'the server requires TLS, which this client does not offer',
    REP_ERR_UNKNOWN: 'export not found on the server',
    REP_ERR_SHUTDOWN: 'the server is shutting down',
    REP_ERR_BLOCK_SIZE_REQD: 'the server requires block size negotiation',
    REP_ERR_TOO_BIG: 'request too big',
}

# NBD_INFO types (in NBD_REP_INFO replies to NBD_OPT_GO / NBD_OPT_INFO)
INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

# Transmission flags
TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1
TFLAG_SEND_FLUSH = 1 << 2
TFLAG_SEND_FUA = 1 << 3
TFLAG_ROTATIONAL = 1 << 4
TFLAG_SEND_TRIM = 1 << 5
TFLAG_SEND_WRITE_ZEROES = 1 << 6
TFLAG_SEND_DF = 1 << 7
TFLAG_CAN_MULTI_CONN = 1 << 8

# Commands and command flags
CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_NAMES = {CMD_READ: 'read', CMD_WRITE: 'write', CMD_DISC: 'disconnect', CMD_FLUSH: 'flush', CMD_TRIM: 'trim',
             CMD_CACHE: 'cache', CMD_WRITE_ZEROES: 'write zeroes', CMD_BLOCK_STATUS: 'block status'}

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3

REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef

# Structured reply chunk types and flags
REPLY_FLAG_DONE = 1 << 0
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = (1 << 15) | 1
REPLY_TYPE_ERROR_OFFSET = (1 << 15) | 2

# base:allocation states
META_BASE_ALLOCATION = 'base:allocation'
STATE_HOLE = 1 << 0
STATE_ZERO = 1 << 1

# NBD error values (errno-like, fixed by the protocol, independent of the local platform)
NBD_ERRORS = {
    1: ('EPERM', 'operation not permitted'),
    5: ('EIO', 'input/output error on the server'),
    12: ('ENOMEM', 'server out of memory'),
    22: ('EINVAL', 'invalid argument (offset, length or alignment rejected by the server)'),
    28: ('ENOSPC', 'no space left on the server storage'),
    75: ('EOVERFLOW', 'value too large (request beyond the export or too long)'),
    95: ('ENOTSUP', 'operation not supported by the server'),
    108: ('ESHUTDOWN', 'the server is shutting down'),
}

DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024  # protocol recommendation when the server does not advertise a maximum
DEFAULT_PREFERRED = 4096

# struct layouts (network byte order)
HANDSHAKE = struct.Struct('>QQH')              # NBDMAGIC, IHAVEOPT, handshake flags
OPTION_HEADER = struct.Struct('>QII')          # IHAVEOPT, option, length
OPTION_REPLY = struct.Struct('>QIII')          # magic, option, reply type, length
EXPORT_NAME_REPLY = struct.Struct('>QH')       # size, transmission flags
REQUEST = struct.Struct('>IHHQQI')             # magic, flags, type, handle, offset, length
SIMPLE_REPLY = struct.Struct('>IIQ')           # magic, error, handle
STRUCTURED_REST = struct.Struct('>HHQI')       # flags, type, handle, length (after the 4-byte magic)
REPLY_MAGIC = struct.Struct('>I')
U16 = struct.Struct('>H')
U32 = struct.Struct('>I')
U64 = struct.Struct('>Q')
INFO_EXPORT_BODY = struct.Struct('>QH')
INFO_BLOCK_SIZE_BODY = struct.Struct('>III')
HOLE_BODY = struct.Struct('>QI')
ERROR_BODY = struct.Struct('>IH')
BLOCK_DESCRIPTOR = struct.Struct('>II')


class NbdProtocolError(Exception):
    """The peer sent something this client cannot accept (bad magic, malformed reply, unexpected handle)."""


def error_text(code):
    """Human-readable text for an NBD error value."""
    name, text = NBD_ERRORS.get(code, ('E%d' % code, 'server error %d' % code))
    return '%s (%s)' % (text, name)


def option_error_text(reply_type, message=b''):
    """Human-readable text for an option error reply, with the server's own message when it sent one."""
    text = REP_ERROR_NAMES.get(reply_type, 'option error 0x%x' % reply_type)
    msg = message.decode('utf-8', 'replace').strip() if message else ''
    return '%s: %s' % (text, msg) if msg else text


# ---- handshake ---------------------------------------------------------------------------------------------------

def parse_handshake(data):
    """Parse the server greeting (18 bytes) -> handshake flags. Oldstyle and non-fixed servers are refused."""
    if len(data) != HANDSHAKE.size:
        raise NbdProtocolError('short greeting (%d bytes)' % len(data))
    magic, second, flags = HANDSHAKE.unpack(data)
    if magic != NBDMAGIC:
        raise NbdProtocolError('not an NBD server (bad greeting magic 0x%x)' % magic)
    if second != IHAVEOPT:
        if (second >> 16) == OLDSTYLE_MAGIC >> 16 or second == OLDSTYLE_MAGIC:
            raise NbdProtocolError('oldstyle NBD servers are not supported; start the server in newstyle mode')
        raise NbdProtocolError('unexpected handshake magic 0x%x' % second)
    if not flags & FLAG_FIXED_NEWSTYLE:
        raise NbdProtocolError('the server does not speak the fixed newstyle handshake')
    return flags


def client_flags(server_flags):
    """Client flags (4 bytes) to answer the greeting with."""
    flags = FLAG_C_FIXED_NEWSTYLE
    if server_flags & FLAG_NO_ZEROES:
        flags |= FLAG_C_NO_ZEROES
    return U32.pack(flags)


def pack_option(option, payload=b''):
    """One option request: IHAVEOPT, option, length, payload."""
    return OPTION_HEADER.pack(IHAVEOPT, option, len(payload)) + bytes(payload)


def parse_option_reply_header(data, expected_option):
    """Option reply header (20 bytes) -> (reply_type, length)."""
    magic, option, reply_type, length = OPTION_REPLY.unpack(data)
    if magic != REPLY_MAGIC_OPT:
        raise NbdProtocolError('bad option reply magic 0x%x' % magic)
    if option != expected_option:
        raise NbdProtocolError('option reply for option %d while waiting for option %d' % (option, expected_option))
    if length > 64 * 1024 * 1024:
        raise NbdProtocolError('option reply too long (%d bytes)' % length)
    return reply_type, length


def _name_bytes(name):
    raw = name.encode('utf-8') if not isinstance(name, bytes) else name
    if len(raw) > 4096:
        raise ValueError('export name longer than 4096 bytes')
    return raw


def pack_go(export_name, info_requests=(INFO_BLOCK_SIZE,)):
    """Payload of NBD_OPT_GO / NBD_OPT_INFO."""
    raw = _name_bytes(export_name)
    out = U32.pack(len(raw)) + raw + U16.pack(len(info_requests))
    for info in info_requests:
        out += U16.pack(info)
    return out


def pack_meta_context(export_name, queries):
    """Payload of NBD_OPT_SET_META_CONTEXT / NBD_OPT_LIST_META_CONTEXT."""
    raw = _name_bytes(export_name)
    out = U32.pack(len(raw)) + raw + U32.pack(len(queries))
    for query in queries:
        q = query.encode('utf-8')
        out += U32.pack(len(q)) + q
    return out


def parse_meta_context_reply(data):
    """NBD_REP_META_CONTEXT payload -> (context_id, name)."""
    if len(data) < 4:
        raise NbdProtocolError('short meta context reply')
    return U32.unpack_from(data)[0], bytes(data[4:]).decode('utf-8', 'replace')


def parse_info(data):
    """NBD_REP_INFO payload -> (info_type, dict). Unknown info types give an empty dict."""
    if len(data) < 2:
        raise NbdProtocolError('short info reply')
    info_type = U16.unpack_from(data)[0]
    body = bytes(data[2:])
    if info_type == INFO_EXPORT:
        if len(body) != INFO_EXPORT_BODY.size:
            raise NbdProtocolError('bad NBD_INFO_EXPORT length %d' % len(body))
        size, flags = INFO_EXPORT_BODY.unpack(body)
        return info_type, {'size': size, 'flags': flags}
    if info_type == INFO_BLOCK_SIZE:
        if len(body) != INFO_BLOCK_SIZE_BODY.size:
            raise NbdProtocolError('bad NBD_INFO_BLOCK_SIZE length %d' % len(body))
        minimum, preferred, maximum = INFO_BLOCK_SIZE_BODY.unpack(body)
        return info_type, check_block_size(minimum, preferred, maximum)
    if info_type in (INFO_NAME, INFO_DESCRIPTION):
        return info_type, {'text': body.decode('utf-8', 'replace')}
    return info_type, {}


def check_block_size(minimum, preferred, maximum):
    """Validate advertised block sizes (powers of two, min <= preferred, min <= max) and return them as a dict."""
    def pow2(v):
        return v > 0 and not v & (v - 1)
    if not pow2(minimum) or minimum > 64 * 1024 or not pow2(preferred) or preferred < minimum:
        raise NbdProtocolError('invalid block sizes advertised: min=%d preferred=%d max=%d' % (minimum, preferred, maximum))
    if maximum != 0xffffffff and (maximum < minimum or maximum % minimum):
        raise NbdProtocolError('invalid maximum block size %d (minimum %d)' % (maximum, minimum))
    return {'minimum': minimum, 'preferred': preferred, 'maximum': maximum}


def max_payload(block_size):
    """Largest READ/WRITE payload to send in one request, from an NBD_INFO_BLOCK_SIZE dict or None."""
    if not block_size:
        return DEFAULT_MAX_PAYLOAD
    maximum = block_size['maximum']
    if maximum == 0xffffffff:
        maximum = DEFAULT_MAX_PAYLOAD
    # the payload must stay a multiple of the minimum block size
    return max(block_size['minimum'], maximum - maximum % block_size['minimum'])


def parse_export_name_reply(data):
    """NBD_OPT_EXPORT_NAME reply (first 10 bytes) -> (size, transmission_flags)."""
    return EXPORT_NAME_REPLY.unpack(data)


# ---- transmission ------------------------------------------------------------------------------------------------

def pack_request(cmd, handle, offset=0, length=0, flags=0):
    """Request header (28 bytes); any payload follows separately."""
    return REQUEST.pack(REQUEST_MAGIC, flags, cmd, handle, offset, length)


def parse_request(data):
    """Request header -> (flags, cmd, handle, offset, length). Used by tests and for symmetry."""
    magic, flags, cmd, handle, offset, length = REQUEST.unpack(data)
    if magic != REQUEST_MAGIC:
        raise NbdProtocolError('bad request magic 0x%x' % magic)
    return flags, cmd, handle, offset, length


def reply_magic(data):
    """First 4 bytes of a reply -> 'simple' or 'structured'."""
    magic = REPLY_MAGIC.unpack(data)[0]
    if magic == SIMPLE_REPLY_MAGIC:
        return 'simple'
    if magic == STRUCTURED_REPLY_MAGIC:
        return 'structured'
    raise NbdProtocolError('bad reply magic 0x%x' % magic)


def parse_simple_reply(data):
    """Simple reply (16 bytes) -> (error, handle)."""
    magic, error, handle = SIMPLE_REPLY.unpack(data)
    if magic != SIMPLE_REPLY_MAGIC:
        raise NbdProtocolError('bad simple reply magic 0x%x' % magic)
    return error, handle


def parse_structured_header(rest):
    """Structured reply header after its magic (16 bytes) -> (flags, type, handle, length)."""
    return STRUCTURED_REST.unpack(rest)


def parse_hole(body):
    """OFFSET_HOLE chunk body -> (offset, length)."""
    if len(body) != HOLE_BODY.size:
        raise NbdProtocolError('bad OFFSET_HOLE chunk length %d' % len(body))
    return HOLE_BODY.unpack(body)


def parse_error_chunk(body, with_offset=False):
    """ERROR / ERROR_OFFSET chunk body -> (error, message, offset or None)."""
    if len(body) < ERROR_BODY.size:
        raise NbdProtocolError('short error chunk')
    error, msg_len = ERROR_BODY.unpack_from(body)
    end = ERROR_BODY.size + msg_len
    if end > len(body):
        raise NbdProtocolError('error chunk message overruns the chunk')
    message = bytes(body[ERROR_BODY.size:end]).decode('utf-8', 'replace')
    offset = None
    if with_offset:
        if len(body) != end + 8:
            raise NbdProtocolError('bad ERROR_OFFSET chunk length')
        offset = U64.unpack_from(body, end)[0]
    return error, message, offset


def parse_block_status(body):
    """BLOCK_STATUS chunk body -> (context_id, [(length, flags), ...])."""
    if len(body) < 4 + BLOCK_DESCRIPTOR.size or (len(body) - 4) % BLOCK_DESCRIPTOR.size:
        raise NbdProtocolError('bad BLOCK_STATUS chunk length %d' % len(body))
    context_id = U32.unpack_from(body)[0]
    descriptors = [BLOCK_DESCRIPTOR.unpack_from(body, pos) for pos in range(4, len(body), BLOCK_DESCRIPTOR.size)]
    return context_id, descriptors


def descriptors_to_extents(offset, length, descriptors):
    """Clamp block status descriptors starting at offset to [offset, offset+length).
    -> list of (offset, length, is_zero); is_zero only when the server says the range reads as zeros."""
    out = []
    pos = offset
    end = offset + length
    for dlen, flags in descriptors:
        if pos >= end:
            break
        if dlen == 0:
            raise NbdProtocolError('zero-length block status descriptor')
        n = min(dlen, end - pos)
        out.append((pos, n, bool(flags & STATE_ZERO)))
        pos += n
    return out


def merge_extents(extents):
    """Coalesce adjacent extents with the same is_zero value."""
    merged = []
    for off, length, zero in extents:
        if merged and merged[-1][2] == zero and merged[-1][0] + merged[-1][1] == off:
            merged[-1] = (merged[-1][0], merged[-1][1] + length, zero)
        else:
            merged.append((off, length, zero))
    return merged


def split_range(offset, length, chunk):
    """Split [offset, offset+length) into pieces of at most chunk bytes -> list of (offset, length)."""
    if chunk <= 0:
        raise ValueError('chunk must be positive')
    pieces = []
    pos = 0
    while pos < length:
        n = min(chunk, length - pos)
        pieces.append((offset + pos, n))
        pos += n
    return pieces


def align_range(offset, length, alignment):
    """Smallest aligned range covering [offset, offset+length) -> (aligned_offset, aligned_length)."""
    start = offset - offset % alignment
    end = offset + length
    if end % alignment:
        end += alignment - end % alignment
    return start, end - start


# ---- URIs --------------------------------------------------------------------------------------------------------

def parse_uri(uri):
    """Parse nbd://host[:port]/export or nbd+unix:///export?socket=/path.
    -> dict(kind='tcp', host, port, export) or dict(kind='unix', socket, export). ValueError when not acceptable."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    export = unquote(parts.path[1:]) if parts.path.startswith('/') else unquote(parts.path)
    if scheme in ('nbds', 'nbds+unix', 'nbds+tcp'):
        raise ValueError('TLS NBD URIs (%s://) are not supported; export the disk over a unix socket or a '
                         'trusted loopback/tunnel and use nbd:// or nbd+unix://' % scheme)
    if scheme in ('nbd', 'nbd+tcp'):
        if not parts.hostname:
            raise ValueError('nbd:// URI needs a host: nbd://host[:port]/export')
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError('invalid port in NBD URI')
        return {'kind': 'tcp', 'host': parts.hostname, 'port': port, 'export': export}
    if scheme == 'nbd+unix':
        if parts.netloc:
            raise ValueError('nbd+unix URIs take no host: nbd+unix:///export?socket=/path')
        sockets = parse_qs(parts.query).get('socket')
        if not sockets or not sockets[0]:
            raise ValueError('nbd+unix URI needs ?socket=/path/to/socket')
        return {'kind': 'unix', 'socket': sockets[0], 'export': export}
    raise ValueError('not an NBD URI (expected nbd://host[:port]/export or nbd+unix:///export?socket=/path)')


def safe_uri(uri):
    """The URI without user info or query parameters other than socket, for messages."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit('@', 1)[-1]
    query = ''
    sockets = parse_qs(parts.query).get('socket')
    if sockets:
        query = '?socket=' + sockets[0]
    return '%s://%s%s%s' % (parts.scheme, netloc, parts.path, query)
