# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper callback: writes each task result (diff included) as JSON to $MODULE_RESULT_FILE."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: save_result
type: aggregate
short_description: Write the task result as JSON to a file (integration tests only)
description:
  - Writes the result of the last task run to the file named by the E(MODULE_RESULT_FILE) environment variable.
requirements:
  - enabled in the test harness through C(ANSIBLE_CALLBACKS_ENABLED)
'''

import json
import os

from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'save_result'
    CALLBACK_NEEDS_ENABLED = True

    def _save(self, result, failed):
        path = os.environ.get('MODULE_RESULT_FILE')
        if path:
            data = dict(result._result)
            if failed:
                data['failed'] = True  # the executor keeps this flag out of the result callbacks see
            with open(path, 'w') as f:
                json.dump(data, f, cls=AnsibleJSONEncoder)

    def v2_runner_on_ok(self, result):
        self._save(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._save(result, True)
