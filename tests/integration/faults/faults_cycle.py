# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One replication cycle of one VM, step by step as roles/replicate runs it, with every step a real module run
in-process (the module's main() with its arguments; no ansible-playbook per step, so hundreds of cycles fit in a
few minutes). Each step's outcome is appended to a JSON-lines log as soon as it is known, so a test can read how
far a cycle got after the process running it was killed.

Order (the role's): replica_register (lock acquire), cbt_enable, snapshot_consolidate (min_age 0), vm_snapshot,
disk_replicate per disk; always: vm_snapshot absent, replica_register (lock release + seal of the cycle).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import importlib
import io
import json
import os
import ssl
import time
import urllib.parse
import urllib.request

from ansible.module_utils.testing import patch_module_args
from ansible_collections.replicator.vsphere.plugins.module_utils.replica import run_owner

from ansible_collections.replicator.vsphere.tests.lab.labctl import sha256_file

MODULES = 'ansible_collections.replicator.vsphere.plugins.modules.'


class StepFailed(Exception):
    def __init__(self, step, result):
        Exception.__init__(self, '%s failed: %s' % (step, result.get('msg')))
        self.step = step
        self.result = result


def run_module(name, args):
    """The module's result dict (what Ansible would register), running its main() in this process."""
    module = importlib.import_module(MODULES + name)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    text = out.getvalue().strip()
    try:
        return json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        return {'failed': True, 'msg': 'module %s printed no result: %r' % (name, text[-2000:])}


def control(site, path, method='GET', **params):
    """A lab control endpoint, straight to the site's labd (never through a relay)."""
    url = 'https://127.0.0.1:%d/lab/%s' % (site['port'], path)
    if params:
        url += '?' + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, method=method, data=b'' if method == 'POST' else None)
    context = ssl.create_default_context(cafile=site['cafile'])
    with urllib.request.urlopen(req, timeout=60, context=context) as resp:
        return json.load(resp)


class Log(object):
    """JSON lines, flushed per record."""

    def __init__(self, path):
        self.path = path

    def add(self, **record):
        record['time'] = time.time()
        with open(self.path, 'a') as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')
            f.flush()


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _trim(result):
    """What the tests need of a module result (the logs stay small)."""
    keep = {}
    for key in ('failed', 'changed', 'msg', 'fault', 'hint', 'plan', 'committed_change_id', 'restore_point',
                'disk', 'replica', 'removed', 'snapshot', 'actions', 'run_id'):
        if key in result:
            keep[key] = result[key]
    stats = result.get('stats') or {}
    keep['stats'] = dict((k, stats[k]) for k in ('bytes_planned', 'bytes_sent', 'bytes_written', 'bytes_data')
                         if k in stats)
    return keep


class Cycle(object):
    """job: {source, target (connection dicts), vm, datacenter, run_id, replica_name, target_host, target_datastore,
    network_map, source_datastore_paths, target_datastore_paths, receiver, retention, lock_ttl, log, progress_dir,
    control: {site: {port, cafile}}}. `before_step(name, index)` is called before every module run."""

    def __init__(self, job, before_step=None):
        self.job = job
        self.log = Log(job['log'])
        self.before_step = before_step or (lambda name, index: None)
        self.steps = 0
        self.disk_index = -1
        # this process stands for the run's ansible-playbook: a rerun after it was killed takes over at once
        self.process = run_owner.identity(job['run_id'], pid=os.getpid())
        if job.get('process_elsewhere'):   # a run on another host (an AWX executor): its end cannot be seen from here
            self.process.update(host='awx-ee-%s' % job['run_id'], boot_id='0' * 8 + self.process['boot_id'][8:])

    def _conn(self):
        return dict(self.job['source'])

    def _ident(self):
        return {'name': self.job['vm'], 'datacenter': self.job.get('datacenter') or 'SRC-DC'}

    def step(self, name, args, label=None):
        self.steps += 1
        self.before_step(name, self.steps)
        params = self._conn()
        params.update(self._ident())
        params.update(args)
        started = time.monotonic()
        result = run_module(name, params)
        self.log.add(step=label or name, ok=not result.get('failed'), seconds=round(time.monotonic() - started, 3),
                     result=_trim(result))
        if result.get('failed'):
            raise StepFailed(label or name, result)
        return result

    def _register(self, **extra):
        job = self.job
        args = dict(target=job['target'], replica_name=job.get('replica_name', '{name}_replica'),
                    target_host=job.get('target_host', 'dr-esx01'), target_datastore=job.get('target_datastore', 'dr-ds1'),
                    network_map=job.get('network_map') or {}, lock_run_id=job['run_id'])
        args.update(extra)
        return args

    def snapshot_digests(self, snapshot_name):
        """{disk key: sha256} of the data the cycle snapshot froze (read from the lab's files)."""
        info = control(self.job['control']['source'], 'vm', name=self.job['vm'])
        snaps = [s for s in info.get('snapshots') or [] if s['name'] == snapshot_name]
        if len(snaps) != 1:
            return {}
        return dict((str(d['key']), sha256_file(d['data'], d['capacity'])) for d in snaps[0]['disks'])

    def run(self):
        job = self.job
        run_id = job['run_id']
        snapshot_name = 'replicator-%s' % run_id
        started = time.time()
        status, error, replica, rows = 'success', None, None, []
        self.log.add(event='start', run_id=run_id, pid=os.getpid())
        try:
            replica = self.step('replica_register', self._register(lock='acquire', lock_ttl=job.get('lock_ttl', 300),
                                                                   run_process=self.process),
                                label='replica_register acquire')
            self.step('cbt_enable', {'untrackable': 'skip'})
            self.step('snapshot_consolidate', {'lock_run_id': run_id})     # the role's defaults otherwise
            snap = self.step('vm_snapshot', {'snapshot_name': snapshot_name,
                                             'description': 'replicator.vsphere cycle %s' % run_id})
            self.log.add(event='snapshot', name=snapshot_name, digests=self.snapshot_digests(snapshot_name))
            for index, disk in enumerate(d for d in snap['snapshot']['disks'] if not d.get('untrackable')):
                self.disk_index = index
                progress = os.path.join(job['progress_dir'], '%s-%s.json' % (run_id, disk['key']))
                copy = self.step('disk_replicate', {
                    'target': job['target'], 'snapshot': snap['snapshot']['moid'], 'disk_key': disk['key'],
                    'source_datastore_paths': job['source_datastore_paths'],
                    'target_datastore_paths': job['target_datastore_paths'], 'receiver': job.get('receiver') or {},
                    'retention': job.get('retention', 3), 'compression_level': job.get('compression_level', 1),
                    'bandwidth_limit': job.get('bandwidth_limit', 0), 'workers': 2, 'cycle_id': run_id,
                    'lock_run_id': run_id, 'run_process': self.process, 'progress_file': progress},
                    label='disk_replicate %s' % disk['key'])
                rows.append(copy)
            self.disk_index = -1
        except StepFailed as exc:
            status, error = 'failed', str(exc)
        finally:
            self.disk_index = -1
            try:
                self.step('vm_snapshot', {'snapshot_name': snapshot_name, 'state': 'absent'},
                          label='vm_snapshot absent')
            except StepFailed:
                pass
            if replica is not None:
                cycle = {'id': run_id, 'status': status, 'started': started, 'finished': time.time(),
                         'bytes_sent': sum(r['stats'].get('bytes_sent', 0) for r in rows),
                         'bytes_written': sum(r['stats'].get('bytes_written', 0) for r in rows)}
                if error:
                    cycle['error'] = error[:500]
                try:
                    self.step('replica_register', self._register(lock='release', retention=job.get('retention', 3),
                                                                 cycle=cycle), label='replica_register release')
                except StepFailed:
                    pass
        self.log.add(event='end', status=status, error=error)
        return status
