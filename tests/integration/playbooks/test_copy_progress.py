# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress while copying, as AWX shows it: replicate.yml through `ansible-runner transmit | worker | process` (the
way AWX runs a job on an execution node), a throttled copy of two disks, and in the job events that come back a
progress line per disk at least every poll interval (stage, percent, bytes, rate, time left), no "FAILED -
RETRYING" line, and no password."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from integration_servers import ansible_settings, playbook_env

pytest.importorskip('ansible_runner')
pytestmark = pytest.mark.timeout(600)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VM = 'prog01'
LINE = re.compile(r'^%s disk (\d+) \([^)]*\): copying (\d+\.\d)%% (\d+\.\d)/(\d+\.\d) MiB, (\d+\.\d) MB/s, '
                  r'(\d+ s left|time left unknown)$' % VM)


def test_progress_lines_reach_the_job_events_through_transmit_worker_process(lab, tmp_path):
    lab.new_vm(VM, disks_mib=(12, 8), cbt=True, seed=60, power_on=True)
    pdd = tmp_path / 'job'
    lab.inventory(pdd, [VM])
    shutil.copytree(os.path.join(REPO, 'playbooks'), str(pdd / 'project'), ignore=shutil.ignore_patterns('.lab'))
    (pdd / 'env').mkdir()
    # the copy is throttled so that it runs for several poll intervals; the poll interval is shortened here only
    (pdd / 'env' / 'extravars').write_text(json.dumps({'replicate_bandwidth_limit': 1, 'replicate_poll_interval': 2}))
    (pdd / 'env' / 'envvars').write_text(json.dumps(ansible_settings(tmp_path)))
    runner = os.path.join(os.path.dirname(sys.executable), 'ansible-runner')
    back = tmp_path / 'back'
    back.mkdir()
    pipeline = '"%s" transmit "%s" -p replicate.yml | "%s" worker | "%s" process "%s"' % (
        runner, pdd, runner, runner, back)
    proc = subprocess.run(['bash', '-o', 'pipefail', '-c', pipeline], capture_output=True, text=True, timeout=500,
                          check=False, env=playbook_env(tmp_path))
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    events = []
    for root, _dirs, files in os.walk(str(back / 'artifacts')):
        if os.path.basename(root) == 'job_events':
            for name in files:
                with open(os.path.join(root, name)) as f:
                    events.append(json.load(f))
    events.sort(key=lambda e: e.get('counter', 0))
    assert events, 'no job events came back'
    stdout = '\n'.join(e.get('stdout') or '' for e in events)
    assert 'FAILED - RETRYING' not in stdout
    assert lab.state['sites']['source']['password'] not in json.dumps(events)
    lines = [LINE.match(line.strip()) for e in events for line in (e.get('stdout') or '').splitlines()]
    lines = [m for m in lines if m]
    by_disk = {}
    for match in lines:
        by_disk.setdefault(match.group(1), []).append(match)
    assert len(by_disk) == 2, stdout[-3000:]          # each disk reported while it copied
    for disk, seen in by_disk.items():
        percents = [float(m.group(2)) for m in seen]
        assert len(seen) >= 2 and percents == sorted(percents) and percents[-1] > percents[0], (disk, percents)
        assert all(float(m.group(4)) > 0 for m in seen)
    assert 'Replication run' in stdout and '1 of 1 VMs replicated' in stdout
    print('\nprogress lines per disk: %s' % dict((d, len(s)) for d, s in by_disk.items()))
