# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.power import (
    ToolsNotRunning, plan_steps, power_facts,
)


def facts(power, tools='guestToolsRunning'):
    return power_facts({'runtime.powerState': power, 'guest.toolsRunningStatus': tools})


def test_power_facts():
    assert facts('poweredOn') == {'power_state': 'poweredOn', 'tools_running': True}
    assert facts('poweredOn', 'guestToolsNotRunning')['tools_running'] is False
    assert power_facts({})['power_state'] is None and power_facts({})['tools_running'] is False


@pytest.mark.parametrize('power, desired, steps', [
    ('poweredOn', 'powered_on', []),
    ('poweredOff', 'powered_on', ['power_on']),
    ('suspended', 'powered_on', ['power_on']),
    ('poweredOff', 'powered_off', []),
    ('poweredOn', 'powered_off', ['power_off']),
    ('suspended', 'powered_off', ['power_off']),
    ('poweredOff', 'shutdown_guest', []),
    ('poweredOn', 'shutdown_guest', ['shutdown_guest']),
])
def test_plan_steps(power, desired, steps):
    assert plan_steps(facts(power), desired) == steps
    assert plan_steps(facts(power), desired, force_after_timeout=True) == steps


def test_guest_shutdown_without_tools_is_refused_or_forced():
    with pytest.raises(ToolsNotRunning) as err:
        plan_steps(facts('poweredOn', 'guestToolsNotRunning'), 'shutdown_guest', vm_name='app01')
    assert "VM 'app01'" in err.value.msg and 'Tools are not running' in err.value.msg
    assert err.value.fault == 'ToolsUnavailable' and 'force_after_timeout' in err.value.hint
    with pytest.raises(ToolsNotRunning, match='suspended'):
        plan_steps(facts('suspended', 'guestToolsNotRunning'), 'shutdown_guest')
    assert plan_steps(facts('poweredOn', 'guestToolsNotRunning'), 'shutdown_guest', True) == ['power_off']
    assert plan_steps(facts('suspended'), 'shutdown_guest', True) == ['power_off']
