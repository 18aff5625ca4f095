# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench_wan.py's own peer setup: the rsync peer really transfers a change its quick check would skip, and a case
that moved no bytes for a change fails the run. No root, no network (rsync local to local)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'bench'))
import bench_wan  # noqa: E402  pylint: disable=wrong-import-position


def _row(cycle, tool, a_tx):
    return (cycle, tool, (1.0, None, {'a_tx': a_tx, 'b_tx': 0}))


def test_check_moved_fails_on_a_peer_that_did_nothing():
    rows = [_row('full', 'mover, zstd-1', 70e6), _row('5% incremental', 'mover, zstd-1', 7.8e6),
            _row('5% incremental', 'rsync -z -I --inplace', 0.02e6),
            _row('2nd VM from the same template, full', 'mover, dedupe on', 1e3)]
    with pytest.raises(bench_wan.BenchError) as e:
        bench_wan.check_moved(rows, {'full': 136e6, '5% incremental': 13.4e6})
    msg = str(e.value)
    assert 'rsync -z -I --inplace' in msg and '0.020 MB' in msg and 'mover' not in msg


def test_check_moved_passes_real_transfers():
    rows = [_row('full', 'rsync -z -I --inplace', 69.4e6), _row('5% incremental', 'rsync -z -I --inplace', 7.6e6),
            _row('2nd VM from the same template, full', 'mover, dedupe on', 1e3)]
    assert bench_wan.check_moved(rows, {'full': 136e6, '5% incremental': 13.4e6}) == 2


@pytest.mark.skipif(not shutil.which('rsync'), reason='needs rsync')
def test_rsync_peer_transfers_a_same_second_same_size_change(tmp_path):
    """The bench's case: the base copy keeps the original's mtime and the guest writes keep size and second."""
    src, base, dst = tmp_path / 'v2.img', tmp_path / 'base.img', tmp_path / 'replica.img'
    src.write_bytes(b'a' * 300000)
    subprocess.check_call(['cp', '-a', str(src), str(base)])
    st = os.stat(str(src))
    with open(str(src), 'r+b') as f:
        f.seek(150000)
        f.write(b'b' * 4096)
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns))
    # without -I rsync's quick check skips the file (the failure this guards against), with the bench's argv it does not
    for argv, same in ((['rsync', '-z', '--inplace', str(src), str(dst)], False),
                       (bench_wan.rsync_argv(None, str(src), str(dst)), True)):
        shutil.copy2(str(base), str(dst))
        subprocess.check_call(argv)
        assert (src.read_bytes() == dst.read_bytes()) is same, argv
