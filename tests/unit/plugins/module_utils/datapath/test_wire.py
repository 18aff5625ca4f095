# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import os

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import wire


def _stream(frames):
    r, w = os.pipe()
    writer = wire.FrameWriter(w)
    for op, payload, fields in frames:
        writer.frame(op, payload, **fields)
    os.close(w)
    with os.fdopen(r, 'rb') as f:
        return f.read()


def test_roundtrip():
    data_fields = {'offset': 4096, 'length': 100, 'digest': b'd' * 16, 'flags': 1}
    raw = _stream([(wire.HELLO, b'{"a": 1}', {}), (wire.DATA, b'x' * 100, data_fields),
                   (wire.COPY, b'', {'source': 3, 'offset': 8192, 'arg': 4096, 'length': 4096})])
    r = wire.FrameReader(io.BytesIO(raw))
    assert r.expect(wire.HELLO).json() == {'a': 1}
    f = r.read_frame()
    assert (f.op, f.offset, f.length, bytes(f.payload), f.digest, f.flags) == (wire.DATA, 4096, 100, b'x' * 100, b'd' * 16, 1)
    f = r.read_frame()
    assert (f.op, f.source, f.offset, f.arg, f.length) == (wire.COPY, 3, 8192, 4096, 4096)
    assert r.read_frame() is None


def test_truncated_payload_and_header():
    raw = _stream([(wire.DATA, b'y' * 50, {})])
    with pytest.raises(wire.WireError, match='truncated'):
        wire.FrameReader(io.BytesIO(raw[:-10])).read_frame()
    with pytest.raises(wire.WireError, match='truncated'):
        wire.FrameReader(io.BytesIO(raw[:20])).read_frame()


def test_corrupted_header_and_bad_magic_version():
    raw = bytearray(_stream([(wire.ZERO, b'', {'offset': 0, 'arg': 4096})]))
    raw[8 + 9] ^= 0xff     # inside the offset field
    with pytest.raises(wire.WireError, match='crc'):
        wire.FrameReader(io.BytesIO(bytes(raw))).read_frame()
    with pytest.raises(wire.WireError, match='magic'):
        wire.FrameReader(io.BytesIO(b'SSH-2.0-x\r\n' + bytes(60))).read_frame()
    bad = bytearray(_stream([]))
    bad[4] = 99
    with pytest.raises(wire.WireError, match='version'):
        wire.FrameReader(io.BytesIO(bytes(bad))).read_frame()


def test_partial_flag_roundtrip_and_version_1_refused():
    raw = _stream([(wire.ZERO, b'', {'offset': 4096, 'arg': 8192, 'flags': wire.FLAG_PARTIAL})])
    f = wire.FrameReader(io.BytesIO(raw)).read_frame()
    assert f.flags & wire.FLAG_PARTIAL and (f.offset, f.arg) == (4096, 8192)
    old = bytearray(raw)
    old[4:6] = (1).to_bytes(2, 'little')    # a version 1 peer does not know partial ops
    with pytest.raises(wire.WireError, match='version 1 is not supported'):
        wire.FrameReader(io.BytesIO(bytes(old))).read_frame()


def test_peer_error_is_raised():
    raw = _stream([(wire.ERROR, b'{"message": "disk full"}', {})])
    with pytest.raises(wire.PeerError, match='disk full'):
        wire.FrameReader(io.BytesIO(raw)).expect(wire.COMMIT)
