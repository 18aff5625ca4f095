# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the pure NBD protocol packing and parsing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import struct

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import nbd_protocol as p


def test_handshake_greeting():
    greeting = b'NBDMAGIC' + b'IHAVEOPT' + struct.pack('>H', 3)
    assert p.parse_handshake(greeting) == 3
    assert p.client_flags(3) == b'\x00\x00\x00\x03'
    assert p.client_flags(1) == b'\x00\x00\x00\x01'


@pytest.mark.parametrize('greeting, match', [
    (b'NOTMAGIC' + b'IHAVEOPT' + b'\x00\x03', 'not an NBD server'),
    (b'NBDMAGIC' + struct.pack('>Q', p.OLDSTYLE_MAGIC) + b'\x00\x00', 'oldstyle'),
    (b'NBDMAGIC' + b'IHAVEOPT' + b'\x00\x00', 'fixed newstyle'),
    (b'NBDMAGIC' + b'IHAVE', 'short greeting'),
])
def test_handshake_refusals(greeting, match):
    with pytest.raises(p.NbdProtocolError, match=match):
        p.parse_handshake(greeting)


def test_pack_option_and_go_payload():
    payload = p.pack_go('disk', (p.INFO_BLOCK_SIZE,))
    assert payload == struct.pack('>I', 4) + b'disk' + struct.pack('>HH', 1, 3)
    packed = p.pack_option(p.OPT_GO, payload)
    assert packed[:8] == b'IHAVEOPT'
    assert struct.unpack('>II', packed[8:16]) == (7, len(payload))
    assert packed[16:] == payload
    assert p.pack_option(p.OPT_STRUCTURED_REPLY) == b'IHAVEOPT' + struct.pack('>II', 8, 0)


def test_meta_context_payload_and_reply():
    payload = p.pack_meta_context('', ['base:allocation'])
    assert payload == struct.pack('>II', 0, 1) + struct.pack('>I', 15) + b'base:allocation'
    assert p.parse_meta_context_reply(struct.pack('>I', 7) + b'base:allocation') == (7, 'base:allocation')
    with pytest.raises(p.NbdProtocolError):
        p.parse_meta_context_reply(b'\x00')


def test_option_reply_header():
    hdr = struct.pack('>QIII', p.REPLY_MAGIC_OPT, p.OPT_GO, p.REP_INFO, 12)
    assert p.parse_option_reply_header(hdr, p.OPT_GO) == (p.REP_INFO, 12)
    with pytest.raises(p.NbdProtocolError, match='waiting for option'):
        p.parse_option_reply_header(hdr, p.OPT_STRUCTURED_REPLY)
    with pytest.raises(p.NbdProtocolError, match='magic'):
        p.parse_option_reply_header(struct.pack('>QIII', 1, p.OPT_GO, p.REP_ACK, 0), p.OPT_GO)
    assert p.REP_ERR_UNKNOWN == 0x80000006 and p.REP_ERR_UNSUP == 0x80000001


def test_info_replies():
    export = struct.pack('>HQH', p.INFO_EXPORT, 1 << 40, p.TFLAG_HAS_FLAGS | p.TFLAG_READ_ONLY)
    assert p.parse_info(export) == (0, {'size': 1 << 40, 'flags': 3})
    bs = struct.pack('>HIII', p.INFO_BLOCK_SIZE, 512, 4096, 32 << 20)
    assert p.parse_info(bs) == (3, {'minimum': 512, 'preferred': 4096, 'maximum': 32 << 20})
    assert p.parse_info(struct.pack('>H', p.INFO_NAME) + b'disk') == (1, {'text': 'disk'})
    assert p.parse_info(struct.pack('>H', 99) + b'xyz') == (99, {})
    with pytest.raises(p.NbdProtocolError):
        p.parse_info(struct.pack('>HQ', p.INFO_EXPORT, 5))


@pytest.mark.parametrize('minimum, preferred, maximum', [(3, 4096, 1 << 20), (512, 256, 1 << 20),
                                                         (4096, 4096, 1000), (1 << 17, 1 << 17, 1 << 20)])
def test_invalid_block_sizes(minimum, preferred, maximum):
    with pytest.raises(p.NbdProtocolError):
        p.check_block_size(minimum, preferred, maximum)


def test_max_payload():
    assert p.max_payload(None) == 32 << 20
    assert p.max_payload({'minimum': 1, 'preferred': 4096, 'maximum': 0xffffffff}) == 32 << 20
    assert p.max_payload({'minimum': 512, 'preferred': 4096, 'maximum': 1 << 20}) == 1 << 20
    assert p.max_payload({'minimum': 1, 'preferred': 4096, 'maximum': 65536 + 7}) == 65536 + 7


def test_export_name_reply():
    assert p.parse_export_name_reply(struct.pack('>QH', 12345, 0x0d)) == (12345, 0x0d)


def test_request_pack_roundtrip():
    raw = p.pack_request(p.CMD_WRITE, 0x1122334455667788, 1 << 33, 4096, p.CMD_FLAG_FUA)
    assert len(raw) == 28
    assert raw[:4] == b'\x25\x60\x95\x13'
    assert p.parse_request(raw) == (p.CMD_FLAG_FUA, p.CMD_WRITE, 0x1122334455667788, 1 << 33, 4096)
    with pytest.raises(p.NbdProtocolError):
        p.parse_request(b'\x00' * 28)


def test_simple_and_structured_reply_headers():
    simple = struct.pack('>IIQ', p.SIMPLE_REPLY_MAGIC, 5, 42)
    assert p.reply_magic(simple[:4]) == 'simple'
    assert p.parse_simple_reply(simple) == (5, 42)
    structured = struct.pack('>IHHQI', p.STRUCTURED_REPLY_MAGIC, p.REPLY_FLAG_DONE, p.REPLY_TYPE_OFFSET_DATA, 9, 4104)
    assert p.reply_magic(structured[:4]) == 'structured'
    assert p.parse_structured_header(structured[4:]) == (1, 1, 9, 4104)
    with pytest.raises(p.NbdProtocolError):
        p.reply_magic(b'\xde\xad\xbe\xef')


def test_hole_and_error_chunks():
    assert p.parse_hole(struct.pack('>QI', 8192, 4096)) == (8192, 4096)
    with pytest.raises(p.NbdProtocolError):
        p.parse_hole(b'\x00' * 8)
    body = struct.pack('>IH', 5, 4) + b'oops'
    assert p.parse_error_chunk(body) == (5, 'oops', None)
    assert p.parse_error_chunk(body + struct.pack('>Q', 77), with_offset=True) == (5, 'oops', 77)
    with pytest.raises(p.NbdProtocolError):
        p.parse_error_chunk(struct.pack('>IH', 5, 10) + b'abc')


def test_error_texts():
    assert 'EIO' in p.error_text(5) and 'input/output' in p.error_text(5)
    assert 'ENOSPC' in p.error_text(28)
    assert p.error_text(200) == 'server error 200 (E200)'
    assert p.option_error_text(p.REP_ERR_UNKNOWN) == 'export not found on the server'
    assert p.option_error_text(p.REP_ERR_POLICY, b'denied ') == 'refused by server policy: denied'


def test_block_status_parse_and_clamp():
    body = struct.pack('>I', 3) + struct.pack('>IIIIII', 4096, 0, 8192, 3, 1 << 20, 1)
    context, desc = p.parse_block_status(body)
    assert context == 3 and desc == [(4096, 0), (8192, 3), (1 << 20, 1)]
    # HOLE alone is not known to read as zeros; ZERO is; the last descriptor is clamped to the range
    assert p.descriptors_to_extents(1000, 20000, desc) == [(1000, 4096, False), (5096, 8192, True),
                                                           (13288, 7712, False)]
    assert p.descriptors_to_extents(0, 100, desc) == [(0, 100, False)]
    with pytest.raises(p.NbdProtocolError):
        p.parse_block_status(body[:-1])
    with pytest.raises(p.NbdProtocolError):
        p.descriptors_to_extents(0, 10, [(0, 0)])


def test_merge_split_align():
    assert p.merge_extents([(0, 10, True), (10, 5, True), (15, 5, False), (20, 1, False), (30, 1, False)]) == \
        [(0, 15, True), (15, 6, False), (30, 1, False)]
    assert p.split_range(100, 250, 100) == [(100, 100), (200, 100), (300, 50)]
    assert p.split_range(0, 0, 100) == []
    with pytest.raises(ValueError):
        p.split_range(0, 10, 0)
    assert p.align_range(513, 10, 512) == (512, 512)
    assert p.align_range(1000, 100, 512) == (512, 1024)
    assert p.align_range(1024, 512, 512) == (1024, 512)


@pytest.mark.parametrize('uri, expected', [
    ('nbd://127.0.0.1/disk', {'kind': 'tcp', 'host': '127.0.0.1', 'port': 10809, 'export': 'disk'}),
    ('nbd://127.0.0.1:10900/a%20b', {'kind': 'tcp', 'host': '127.0.0.1', 'port': 10900, 'export': 'a b'}),
    ('nbd://[::1]:10901/', {'kind': 'tcp', 'host': '::1', 'port': 10901, 'export': ''}),
    ('nbd+tcp://localhost', {'kind': 'tcp', 'host': 'localhost', 'port': 10809, 'export': ''}),
    ('nbd+unix:///sda?socket=/run/nbd.sock', {'kind': 'unix', 'socket': '/run/nbd.sock', 'export': 'sda'}),
    ('nbd+unix://?socket=/s', {'kind': 'unix', 'socket': '/s', 'export': ''}),
])
def test_parse_uri(uri, expected):
    assert p.parse_uri(uri) == expected


@pytest.mark.parametrize('uri, match', [
    ('http://127.0.0.1/disk', 'not an NBD URI'),
    ('nbd:///disk', 'needs a host'),
    ('nbd://127.0.0.1:99999/disk', 'port'),
    ('nbd+unix:///disk', 'socket='),
    ('nbd+unix://host/disk?socket=/s', 'no host'),
    ('nbds://127.0.0.1/disk', 'TLS'),
])
def test_parse_uri_refusals(uri, match):
    with pytest.raises(ValueError, match=match):
        p.parse_uri(uri)


def test_safe_uri_drops_secrets():
    assert p.safe_uri('nbd://user:secret@127.0.0.1:10809/disk?tls-psk-file=/k') == 'nbd://127.0.0.1:10809/disk'
    assert p.safe_uri('nbd+unix:///d?socket=/s&tls-psk-file=/k') == 'nbd+unix:///d?socket=/s'
