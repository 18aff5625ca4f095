# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data mover with NBD endpoints: nbdkit (file, memory) and qemu-nbd as source and as target."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 12 * MIB + 512


def _endpoint_digest(uri, size):
    h = hashlib.sha256()
    buf = bytearray(MIB)
    with open_endpoint(uri) as ep:
        off = 0
        while off < size:
            n = min(MIB, size - off)
            view = buf if n == MIB else bytearray(n)
            ep.preadinto(off, view)
            h.update(view)
            off += n
    return h.hexdigest()


def test_nbdkit_file_source_to_file(nbd, tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=21)
    uri = nbd.nbdkit('file', src)
    dst = str(tmp_path / 'dst.img')
    replicate_disk(uri, dst, 'full', create_target=True, change_id='n1', workers=3)
    assert digest_file(src) == digest_file(dst)
    patch(src, SIZE - 512, b'N' * 512)
    replicate_disk(uri, dst, 'cbt', cbt_extents=[(SIZE - 512, 512)], change_id='n2')
    assert digest_file(src) == digest_file(dst)


def test_file_to_nbdkit_memory_target_with_state_dir(nbd, tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=22)
    uri = nbd.nbdkit('memory', 'size=%d' % SIZE)
    state = str(tmp_path / 'state')
    first = replicate_disk(src, uri, 'full', state_dir=state, change_id='m1', workers=3)
    assert _endpoint_digest(uri, SIZE) == digest_file(src)
    # the first cycle is unjournaled: the workers wrote its blocks, several NBD writes in flight at once
    assert first.stats['blocks_written_direct'] > 0
    patch(src, 3 * MIB, bytes(MIB))             # zeros over data through NBD write_zeroes
    patch(src, 6 * MIB, os.urandom(1000))
    r = replicate_disk(src, uri, 'digests', state_dir=state, change_id='m2')
    assert _endpoint_digest(uri, SIZE) == digest_file(src)
    assert r.stats['bytes_data'] == MIB and r.stats['bytes_zero'] == MIB


def test_qemu_nbd_qcow2_source(nbd, tmp_path):
    import subprocess
    raw = make_image(str(tmp_path / 'raw.img'), SIZE, seed=23)
    qcow = str(tmp_path / 'disk.qcow2')
    subprocess.check_call(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow])
    uri = nbd.qemu_nbd(qcow, fmt='qcow2')
    dst = str(tmp_path / 'dst.img')
    r = replicate_disk(uri, dst, 'full', create_target=True)
    assert digest_file(raw) == digest_file(dst)
    assert r.stats['bytes_read'] < SIZE         # holes reported by NBD block status are not read
