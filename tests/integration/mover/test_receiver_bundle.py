# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The receiver bundle's compiled-module cache on the receiver host: used when it is the user's own, rebuilt when a
file is damaged, old versions removed, never used when others may write to it; the bundle's exit (the entry's status,
buffered output flushed). Real receiver child processes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import marshal
import os
import subprocess
import sys

from ansible_collections.replicator.vsphere.plugins.module_utils.mover import ssh_transport
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.sender import replicate_disk
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.ssh_transport import ReceiverSpec

from mover_helpers import MIB, digest_file, make_image, patch

SIZE = 3 * MIB + 512


def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    return tmp_path / 'cache' / 'replicator-vsphere' / ('bundle-%s' % sys.implementation.cache_tag)


def _cycle(src, dst, change_id, create=False):
    replicate_disk(src, dst, 'digests' if not create else 'full', receiver=ReceiverSpec(), create_target=create,
                   compress_level=1, change_id=change_id)
    assert digest_file(src) == digest_file(dst)


def test_compiled_modules_are_cached_and_damage_is_repaired(tmp_path, monkeypatch):
    cache = _cache(tmp_path, monkeypatch)
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=21)
    dst = str(tmp_path / 'dst.img')
    _cycle(src, dst, 'b1', create=True)
    assert oct(cache.stat().st_mode & 0o777) == '0o700'
    names = sorted(p.name for p in cache.iterdir())
    modules = set(n.rsplit('-', 1)[0] for n in names)
    assert {'receiver.stream', 'datapath.wire', 'datapath.digests', 'datapath.endpoint', 'store.replica_store',
            'store.journal'} <= modules, names
    assert not [n for n in names if not n.endswith('.bin')], names
    receiver = next(p for p in cache.iterdir() if p.name.startswith('receiver.stream-'))
    assert marshal.loads(receiver.read_bytes()).co_filename == '<bundle>/receiver.stream.py'
    stale = cache / 'receiver.stream-0000000000000000000000000000000000000000.bin'
    stale.write_bytes(b'an older version')
    receiver.write_bytes(b'\x00 damaged')
    patch(src, MIB, os.urandom(4096))
    _cycle(src, dst, 'b2')
    assert marshal.loads(receiver.read_bytes()).co_filename == '<bundle>/receiver.stream.py'   # rebuilt
    assert not stale.exists()
    assert sorted(p.name for p in cache.iterdir()) == names


def test_a_cache_directory_open_to_others_is_not_used(tmp_path, monkeypatch):
    cache = _cache(tmp_path, monkeypatch)
    cache.mkdir(parents=True)
    os.chmod(str(cache), 0o777)
    planted = cache / 'receiver-planted.bin'
    planted.write_bytes(b'not ours')
    src = make_image(str(tmp_path / 'src.img'), SIZE, seed=22)
    dst = str(tmp_path / 'dst.img')
    _cycle(src, dst, 'o1', create=True)
    assert [p.name for p in cache.iterdir()] == ['receiver-planted.bin']
    assert planted.read_bytes() == b'not ours'


def test_the_bundle_exits_with_the_entry_status_and_keeps_buffered_output(monkeypatch):
    """_finish skips the interpreter's teardown: the exit status is the entry's, and what the entry printed (Python's
    stdout goes to stderr there, block-buffered on a pipe) is flushed first."""
    monkeypatch.setitem(ssh_transport.ENTRIES, 'probe', 'print("stray output from the entry")\n_finish(3)\n')
    bundle = ssh_transport.build_bundle('probe')
    env = dict((k, v) for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED')
    proc = subprocess.run(ReceiverSpec().argv(), input=b'%d\n' % len(bundle) + bundle, capture_output=True,
                          timeout=60, check=False, env=env)
    assert proc.returncode == 3
    assert b'stray output from the entry' in proc.stderr
    assert proc.stdout == b''


def test_store_operation_exit_status(tmp_path):
    """A store operation's process exits 0 with its answer, and 1 with the error when it fails."""
    bundle = ssh_transport.build_bundle('store_op')
    missing = str(tmp_path / 'none.img')
    for request, status in (({'op': 'inspect', 'target': missing, 'state_dir': str(tmp_path / 'state')}, 0),
                            ({'op': 'no-such-operation', 'target': missing}, 1)):
        proc = subprocess.run(ReceiverSpec().argv(), input=b'%d\n' % len(bundle) + bundle
                              + json.dumps(request).encode() + b'\n', capture_output=True, timeout=60, check=False)
        answer = json.loads(proc.stdout.decode())
        assert proc.returncode == status and answer['ok'] is (status == 0), (proc.returncode, answer, proc.stderr)
    assert answer['error'] and 'no-such-operation' in answer['error']
