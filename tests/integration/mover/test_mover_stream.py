# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data mover over the wire: a receiver child process (the SSH code path without ssh), real sshd on 127.0.0.1,
truncated / corrupted streams, a receiver killed mid-stream."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import json
import os
import signal
import threading
import time

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import wire
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import block_digest, zero_digest
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.endpoint import open_endpoint
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.stream import serve
from ansible_collections.replicator.vsphere.plugins.module_utils.store.replica_store import ReplicaStore
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import (
    BOOTSTRAP, ReceiverSpec, SshReceiverSpec, TransportError,
)

from integration_servers import free_port
from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 20 * MIB + 1024


@pytest.fixture
def seeded(tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=11)
    dst = str(tmp_path / 'dst.img')
    replicate_disk(src, dst, 'full', create_target=True, change_id='c1')
    return src, dst


def test_pipe_receiver_full_cbt_digests_compressed(tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=12)
    dst = str(tmp_path / 'dst.img')
    r = replicate_disk(src, dst, 'full', receiver=ReceiverSpec(), create_target=True, compress_level=1,
                       change_id='p1')
    assert digest_file(src) == digest_file(dst)
    assert 0 < r.stats['bytes_compressed'] < r.stats['bytes_data']
    assert r.stats['bytes_sent'] < r.stats['bytes_data']
    patch(src, SIZE - 512, b'T' * 512)
    patch(src, MIB, bytes(MIB))
    r = replicate_disk(src, dst, 'cbt', cbt_extents=[(SIZE - 512, 512), (MIB, MIB)], receiver=ReceiverSpec(),
                       change_id='p2')
    assert digest_file(src) == digest_file(dst) and r.committed_change_id == 'p2'
    patch(src, 9 * MIB, os.urandom(100))
    r = replicate_disk(src, dst, 'digests', receiver=ReceiverSpec(), change_id='p3')
    assert digest_file(src) == digest_file(dst) and r.stats['bytes_data'] == MIB


def _record(frames):
    """A sender stream as bytes (stream header + frames)."""
    path_r, path_w = os.pipe()
    out = bytearray()
    done = threading.Event()

    def drain():
        with os.fdopen(path_r, 'rb') as f:
            out.extend(f.read())
        done.set()
    t = threading.Thread(target=drain)
    t.start()
    w = wire.FrameWriter(path_w)
    for op, payload, fields in frames:
        w.frame(op, payload, **fields)
    os.close(path_w)
    t.join(10)
    return bytes(out)


def _serve(stream, tmp_path):
    out = str(tmp_path / 'reply.bin')
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        rc = serve(io.BufferedReader(io.BytesIO(stream)), fd)
    finally:
        os.close(fd)
    reader = wire.FrameReader(open(out, 'rb'))
    frames = []
    while True:
        f = reader.read_frame()
        if f is None:
            return rc, frames
        frames.append((f.name, f.json() if f.op in (wire.ERROR, wire.COMMIT, wire.STATE, wire.NEED) else None))


def _frames(dst, blocks, end=True, ops=None):
    hello = json.dumps({'target': dst, 'capacity': SIZE, 'block_size': MIB, 'journal': True}).encode()
    frames = [(wire.HELLO, hello, {})]
    for off, data in blocks:
        frames.append((wire.DATA, data, {'offset': off, 'length': len(data), 'digest': block_digest(data)}))
    if end:
        frames.append((wire.END, json.dumps({'change_id': 'w2', 'ops': len(blocks) if ops is None else ops}).encode(), {}))
    return frames


def test_raw_blocks_are_spliced_from_a_file_source_at_its_extent_offset(tmp_path):
    """Raw DATA payloads of a file source go into the receiver's pipe by splice; a VMDK descriptor whose flat extent
    starts 8 KiB into its file shows that the extent offset is honoured (the receiver verifies every digest)."""
    image = make_image(str(tmp_path / 'img.raw'), SIZE, seed=15)
    with open(image, 'rb') as f, open(str(tmp_path / 'd-flat.vmdk'), 'wb') as flat:
        flat.write(os.urandom(8192))    # not part of the disk
        flat.write(f.read())
    (tmp_path / 'd.vmdk').write_text('# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n'
                                     'createType="monolithicFlat"\nRW %d FLAT "d-flat.vmdk" 16\n' % (SIZE // 512))
    dst = str(tmp_path / 'dst.img')
    r = replicate_disk(str(tmp_path / 'd.vmdk'), dst, 'full', receiver=ReceiverSpec(), create_target=True,
                       compress_level=0, change_id='s1')
    assert digest_file(dst) == digest_file(image, SIZE) and r.stats['bytes_data'] > 0
    assert r.stats['blocks_spliced'] == r.stats['bytes_data'] // MIB + (1 if r.stats['bytes_data'] % MIB else 0)
    # compressed cycles splice only what goes raw (random data)
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=16)
    r = replicate_disk(src, str(tmp_path / 'dst2.img'), 'full', receiver=ReceiverSpec(), create_target=True,
                       compress_level=1, change_id='s1')
    assert digest_file(src) == digest_file(str(tmp_path / 'dst2.img'))
    assert r.stats['blocks_spliced'] >= r.stats['blocks_sent_raw'] > 0    # + blocks zstd did not shrink


def test_serve_commits_a_valid_stream(seeded, tmp_path):
    _src, dst = seeded
    data = os.urandom(MIB)
    rc, frames = _serve(_record(_frames(dst, [(0, data)])), tmp_path)
    assert rc == 0 and frames[-1][0] == 'COMMIT'
    with open(dst, 'rb') as f:
        assert f.read(MIB) == data
    assert ReplicaStore(dst + '.replicator').load()['change_id'] == 'w2'


@pytest.mark.parametrize('damage', ['truncate', 'corrupt', 'no-end', 'lost-op'])
def test_bad_streams_commit_nothing(seeded, tmp_path, damage):
    _src, dst = seeded
    before = digest_file(dst)
    blocks = [(i * MIB, os.urandom(MIB)) for i in range(12)]      # more than one receiver batch
    if damage == 'lost-op':
        stream = _record(_frames(dst, blocks, ops=len(blocks) + 1))
    elif damage == 'no-end':
        stream = _record(_frames(dst, blocks, end=False))
    else:
        stream = bytearray(_record(_frames(dst, blocks)))
        if damage == 'truncate':
            stream = stream[:len(stream) - 3 * MIB]
        else:
            stream[len(stream) - 2 * MIB] ^= 0x55      # inside a DATA payload near the end
        stream = bytes(stream)
    rc, frames = _serve(stream, tmp_path)
    assert rc == 1 and frames[-1][0] == 'ERROR'
    assert frames[-1][1]['message']
    assert digest_file(dst) == before
    doc = ReplicaStore(dst + '.replicator').load()
    assert doc['change_id'] == 'c1' and not doc.get('open_cycle')


def test_wrong_zero_digest_refused(seeded, tmp_path):
    _src, dst = seeded
    hello = json.dumps({'target': dst, 'capacity': SIZE, 'block_size': MIB}).encode()
    rc, frames = _serve(_record([(wire.HELLO, hello, {}),
                                 (wire.ZERO, b'', {'offset': 0, 'arg': MIB, 'digest': block_digest(b'no')})]),
                        tmp_path)
    assert rc == 1 and 'wrong digest' in frames[-1][1]['message']
    assert zero_digest(MIB) != block_digest(b'no')


def _children():
    kids = set()
    base = '/proc/%d/task' % os.getpid()
    for tid in os.listdir(base):
        try:
            with open(os.path.join(base, tid, 'children')) as f:
                kids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return kids


def test_receiver_killed_mid_stream_then_rerun(seeded, tmp_path):
    src, dst = seeded
    last_point = digest_file(dst)
    patch(src, 0, os.urandom(SIZE - MIB))
    progress = str(tmp_path / 'progress.json')
    before = _children()
    killed = []

    def killer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            try:
                with open(progress) as f:
                    done = json.load(f)['bytes_done']
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= 13 * MIB:
                for pid in _children() - before:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)
    t = threading.Thread(target=killer)
    t.start()
    with pytest.raises(TransportError):
        replicate_disk(src, dst, 'cbt', cbt_extents=[(0, SIZE - MIB)], receiver=ReceiverSpec(), compress_level=0,
                       bandwidth_mbps=8, progress_file=progress, change_id='c2')
    t.join(70)
    assert killed
    store = ReplicaStore(dst + '.replicator')
    assert store.load().get('open_cycle')          # the killed cycle is recorded, not committed
    with open_endpoint(dst, writable=True) as target:
        actions = store.recover(target)
    assert any('rolled back' in a or 'not modified' in a for a in actions)
    assert digest_file(dst) == last_point
    r = replicate_disk(src, dst, 'cbt', cbt_extents=[(0, SIZE - MIB)], receiver=ReceiverSpec(), change_id='c2')
    assert digest_file(src) == digest_file(dst) and r.committed_change_id == 'c2'


class _DiesAfterCommit(ReceiverSpec):
    """A receiver child that SIGKILLs itself right after the manifest of the commit is renamed into place, before it
    can answer COMMIT: the link is lost with the cycle durable on the target."""

    PRELUDE = ('import json,os,signal\n_replace=os.replace\n'
               'def _kill_after_commit(a,b,*x,**k):\n'
               '    _replace(a,b,*x,**k)\n'
               '    if os.path.basename(str(b))=="manifest.json" and json.load(open(b)).get("change_id")=="c2":\n'
               '        os.kill(os.getpid(),signal.SIGKILL)\n'
               'os.replace=_kill_after_commit\n')

    def argv(self):
        return [self.python, '-c', self.PRELUDE + BOOTSTRAP.replace(';', '\n')]


def test_link_lost_after_the_commit_says_the_outcome_is_unknown(seeded, tmp_path):
    """The sender cannot tell a commit from none when the link breaks after END: its error says so (the module's
    hint then says the receiver may have committed), and the store on the target holds the whole new cycle."""
    from ansible_collections.replicator.vsphere.plugins.module_utils.replica.disk_replication import (
        COMMIT_UNKNOWN_HINT, ReplicationError, data_path_errors,
    )
    src, dst = seeded
    patch(src, 3 * MIB, os.urandom(2 * MIB))
    with pytest.raises(ReplicationError) as failed:
        with data_path_errors('Replicating disk 2000'):
            replicate_disk(src, dst, 'cbt', cbt_extents=[(3 * MIB, 2 * MIB)], receiver=_DiesAfterCommit(),
                           change_id='c2')
    assert failed.value.hint == COMMIT_UNKNOWN_HINT, failed.value.hint
    assert ReplicaStore(dst + '.replicator').load()['change_id'] == 'c2'
    assert digest_file(src) == digest_file(dst)
    # a failure before END keeps the plain hint: nothing was committed
    with pytest.raises(ReplicationError) as early:
        with data_path_errors('Replicating disk 2000'):
            replicate_disk(src, str(tmp_path / 'missing.img'), 'cbt', cbt_extents=[(7 * MIB, MIB)],
                           receiver=ReceiverSpec(), change_id='c3')
    assert 'Nothing was committed' in early.value.hint


def test_ssh_receiver(sshd, tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=13)
    dst = str(tmp_path / 'dst.img')
    r = replicate_disk(src, dst, 'full', receiver=sshd.spec(), create_target=True, change_id='s1',
                       allowed_roots=[str(tmp_path)])
    assert digest_file(src) == digest_file(dst)
    patch(src, 4 * MIB + 17, b'over ssh')
    r = replicate_disk(src, dst, 'digests', receiver=sshd.spec(), change_id='s2')
    assert digest_file(src) == digest_file(dst)
    assert r.stats['bytes_data'] == MIB and r.restore_point['change_id'] == 's2'


def test_ssh_target_outside_allowed_roots(sshd, tmp_path):
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=14)
    (tmp_path / 'jail').mkdir()
    with pytest.raises(TransportError, match='outside the allowed'):
        replicate_disk(src, str(tmp_path / 'jail' / '..' / 'dst.img'), 'full', receiver=sshd.spec(),
                       create_target=True, allowed_roots=[str(tmp_path / 'jail')])


def test_unreachable_ssh_host(tmp_path):
    src = make_image(str(tmp_path / 'src.img'), 2 * MIB, seed=15)
    spec = SshReceiverSpec('127.0.0.1', port=free_port(), config_file='none', connect_timeout=5,
                           options=['UserKnownHostsFile=%s' % (tmp_path / 'kh'), 'StrictHostKeyChecking=no'])
    with pytest.raises(TransportError, match='(?i)refused|closed|exit status 255'):
        replicate_disk(src, str(tmp_path / 'dst.img'), 'full', receiver=spec, create_target=True)
