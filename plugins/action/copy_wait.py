# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of replicator.vsphere.copy_wait: poll the copies' host with the module every poll_interval seconds and
print a progress line per running copy, until every copy has finished or the timeout has passed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MIB = 1048576.0


def progress_line(host, label, progress):
    """'app01 disk 2000 (Hard disk 1): copying 45.0% 460.8/1024.0 MiB, 85.3 MB/s, 7 s left'."""
    if not progress:
        return '%s %s: starting' % (host, label)
    stage = progress.get('stage') or 'running'
    line = '%s %s: %s' % (host, label, stage)
    total = progress.get('bytes_total') or 0
    if stage == 'copying' and total:
        done = (progress.get('bytes_done') or 0) / MIB
        line += ' %.1f%% %.1f/%.1f MiB' % (progress.get('percent') or 0.0, done, total / MIB)
        line += ', %.1f MB/s' % ((progress.get('rate_bps') or 0) / 1e6)
        eta = progress.get('eta_seconds')
        line += ', %d s left' % eta if eta is not None else ', time left unknown'
    return line


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        interval = max(1, int(args.get('poll_interval', 5)))
        timeout = int(args.get('timeout', 86400))
        host = (task_vars or {}).get('inventory_hostname', '')
        deadline = time.monotonic() + timeout
        polls = 0
        next_line = time.monotonic() + min(interval, 2)
        while True:
            polled = self._execute_module(module_name='replicator.vsphere.copy_wait', module_args=dict(args),
                                          task_vars=task_vars)
            if polled.get('failed'):
                return polled
            if polled['finished']:
                break
            if time.monotonic() >= deadline:
                for index, found in enumerate(polled['results']):
                    if found is None:
                        job = polled['jobs'][index]
                        polled['results'][index] = {
                            'failed': True, 'msg': 'disk copy %s still running after %d s (timeout); it goes on '
                                                   'as job %s' % (job.get('label') or job['jid'], timeout, job['jid'])}
                break
            if time.monotonic() >= next_line:      # a line per running copy every poll interval
                for job in polled['jobs']:
                    if not job['finished']:
                        display.display(progress_line(host, job.get('label') or job['jid'], job.get('progress')))
                next_line = time.monotonic() + interval
            # short copies end in a second or two: poll at 0.5, 1, 2 s first, then every poll interval
            polls += 1
            time.sleep(min(interval, 0.25 * 2 ** polls, max(0.0, deadline - time.monotonic())))
        results = []
        for found in polled['results']:
            found = dict(found or {})
            found['failed'] = bool(found.get('failed'))
            results.append(found)
        result.update(changed=any(r.get('changed') for r in results), results=results,
                      failed=False, jobs=len(results))
        return result
