# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.replicator.vsphere.plugins.module_utils.mover.progress import Progress
from ansible_collections.replicator.vsphere.plugins.module_utils.mover.throttle import TokenBucket


class FakeClock(object):
    def __init__(self):
        self.now = 0.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept += s
        self.now += s


def test_token_bucket_limits_average_rate():
    c = FakeClock()
    tb = TokenBucket(10, burst=1000000, clock=c, sleep=c.sleep)     # 10 MB/s
    for _round in range(100):
        tb.take(1000000)       # 100 MB
    # the bucket starts empty: each MB (charged after it was sent) is paid with 0.1 s
    assert abs(c.now - 10.0) < 1e-6


def test_token_bucket_unlimited():
    c = FakeClock()
    tb = TokenBucket(0, clock=c, sleep=c.sleep)
    tb.take(10 ** 12)
    assert c.slept == 0 and tb.unlimited


def test_progress_file_is_valid_json(tmp_path):
    c = FakeClock()
    p = Progress(str(tmp_path / 'p.json'), total=1000, interval=1.0, clock=c)
    p.set_stage('copying')
    c.now = 2.0
    p.add(500)
    doc = json.loads((tmp_path / 'p.json').read_text())
    assert doc['stage'] == 'copying' and doc['bytes_done'] == 500 and doc['rate_bps'] == 250
    assert doc['eta_seconds'] == 2.0
    assert not [f for f in tmp_path.iterdir() if '.tmp' in f.name]
