# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power state of a VM: read it (one PropertyCollector round trip), plan the steps to powered_on / powered_off /
shutdown_guest, and run them.

A guest shutdown asks the guest OS through VMware Tools (ShutdownGuest returns at once), then waits for
runtime.powerState to become poweredOff with WaitForUpdatesEx (no polling). When the guest does not finish within
the timeout, or Tools do not run, a forced power off follows only when the user allowed it.

plan_steps and power_facts are pure (they read already-fetched properties); apply_steps does the calls.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError, from_fault
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.tasks import run_task

POWER_PATHS = ['name', 'config.instanceUuid', 'runtime.powerState', 'guest.toolsRunningStatus']

POWERED_ON = 'poweredOn'
POWERED_OFF = 'poweredOff'
SUSPENDED = 'suspended'

# The power state each desired state ends in.
END_STATE = {'powered_on': POWERED_ON, 'powered_off': POWERED_OFF, 'shutdown_guest': POWERED_OFF}


class GuestStillRunning(VsphereError):
    """The guest did not power off within the shutdown timeout and no forced power off was allowed."""


class ToolsNotRunning(VsphereError):
    """A guest shutdown needs VMware Tools running in the guest."""


def power_facts(props):
    """{power_state, tools_running} out of POWER_PATHS properties."""
    power = props.get('runtime.powerState')
    return {'power_state': str(power) if power is not None else None,
            'tools_running': str(props.get('guest.toolsRunningStatus') or '') == 'guestToolsRunning'}


def plan_steps(facts, desired, force_after_timeout=False, vm_name='VM'):
    """The steps from `facts` (power_facts) to `desired`: [] when already there, else a list of 'power_on',
    'power_off' and 'shutdown_guest'. A guest shutdown needs a powered-on guest with Tools running; otherwise it
    becomes a power off when forcing is allowed, and an error when not."""
    power = facts['power_state']
    if desired == 'powered_on':
        return [] if power == POWERED_ON else ['power_on']
    if power == POWERED_OFF:
        return []
    if desired == 'powered_off':
        return ['power_off']
    if power == POWERED_ON and facts['tools_running']:
        return ['shutdown_guest']
    if force_after_timeout:
        return ['power_off']
    why = 'it is suspended' if power == SUSPENDED else 'VMware Tools are not running in the guest'
    raise ToolsNotRunning("Cannot shut down the guest of VM '%s': %s" % (vm_name, why), fault='ToolsUnavailable',
                          hint='Start VMware Tools in the guest, or set force_after_timeout: true to power the VM '
                               'off instead (like pulling the plug).')


def wait_for_power_state(client, vm, wanted, timeout):
    """Block until vm's runtime.powerState is `wanted` or `timeout` seconds pass: True when reached.

    WaitForUpdatesEx on a filter of the one property: the server pushes the change, each wait blocks up to the time
    left (at most 60 s per call), and the filter is always destroyed.
    """
    collector = client.content.propertyCollector
    prop_spec = vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=['runtime.powerState'],
                                                           all=False)
    obj_spec = vmodl.query.PropertyCollector.ObjectSpec(obj=vm, skip=False)
    spec = vmodl.query.PropertyCollector.FilterSpec(objectSet=[obj_spec], propSet=[prop_spec])
    power_filter = collector.CreateFilter(spec, True)
    deadline = time.monotonic() + max(0, timeout)
    version, state = '', None
    try:
        while True:
            left = deadline - time.monotonic()
            # the first wait always runs: its answer is the current value
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max(0, min(int(left + 0.999), 60)))
            update = collector.WaitForUpdatesEx(version, options)
            if update is not None:
                version = update.version
                for filter_set in update.filterSet or []:
                    for obj_set in filter_set.objectSet or []:
                        for change in obj_set.changeSet or []:
                            if change.name == 'runtime.powerState':
                                state = str(change.val)
            if state == wanted:
                return True
            if deadline - time.monotonic() <= 0:
                return False
    finally:
        power_filter.Destroy()


def _power_task(client, vm, vm_name, step, timeout):
    """PowerOnVM_Task / PowerOffVM_Task and wait: the task moid. A power off that finds the VM already off (the
    guest finished its shutdown meanwhile) is not an error: None."""
    call, verb = (vm.PowerOnVM_Task, 'Powering on') if step == 'power_on' else (vm.PowerOffVM_Task, 'Powering off')
    try:
        return run_task(client, call, "%s VM '%s'" % (verb, vm_name), timeout)[1]
    except VsphereError as exc:
        if exc.fault == 'InvalidPowerState' and step == 'power_off' and \
                power_facts(fetch(client, vm, POWER_PATHS))['power_state'] == POWERED_OFF:
            return None
        raise


def shutdown_guest(client, vm, vm_name, shutdown_timeout, force_after_timeout, task_timeout):
    """ShutdownGuest, wait up to `shutdown_timeout` s for poweredOff, then power off if allowed:
    {steps, forced, task, waited}."""
    started = time.monotonic()
    try:
        vm.ShutdownGuest()
    except vim.fault.ToolsUnavailable as exc:
        if not force_after_timeout:
            raise from_fault(exc, "Shutting down the guest of VM '%s'" % vm_name, ToolsNotRunning)
        return {'steps': ['power_off'], 'forced': True, 'waited': 0.0,
                'task': _power_task(client, vm, vm_name, 'power_off', task_timeout)}
    except vim.fault.InvalidPowerState:
        if power_facts(fetch(client, vm, POWER_PATHS))['power_state'] == POWERED_OFF:
            return {'steps': [], 'forced': False, 'waited': 0.0, 'task': None}
        raise
    except (vim.fault.VimFault, vmodl.MethodFault) as exc:
        raise from_fault(exc, "Shutting down the guest of VM '%s'" % vm_name)
    off = wait_for_power_state(client, vm, POWERED_OFF, shutdown_timeout)
    waited = round(time.monotonic() - started, 3)
    if off:
        return {'steps': ['shutdown_guest'], 'forced': False, 'waited': waited, 'task': None}
    if not force_after_timeout:
        raise GuestStillRunning("VM '%s' is still running %ss after the guest shutdown request" % (vm_name,
                                                                                                   shutdown_timeout),
                                fault='GuestStillRunning',
                                hint='The guest may be installing updates or hung: check its console, raise '
                                     'shutdown_timeout, or set force_after_timeout: true to power it off after the '
                                     'timeout.')
    task = _power_task(client, vm, vm_name, 'power_off', task_timeout)
    return {'steps': ['shutdown_guest', 'power_off'], 'forced': True, 'waited': waited, 'task': task}


def apply_steps(client, vm, vm_name, steps, opts):
    """Run the planned steps: {steps, forced, task, waited} of what was done."""
    done = {'steps': [], 'forced': False, 'task': None, 'waited': 0.0}
    for step in steps:
        if step == 'shutdown_guest':
            out = shutdown_guest(client, vm, vm_name, opts['shutdown_timeout'], opts['force_after_timeout'],
                                 opts['task_timeout'])
            done['steps'].extend(out['steps'])
            done['forced'] = out['forced']
            done['waited'] = out['waited']
            done['task'] = out['task'] or done['task']
        else:
            task = _power_task(client, vm, vm_name, step, opts['task_timeout'])
            done['steps'].append(step)
            done['forced'] = done['forced'] or (step == 'power_off' and opts['state'] == 'shutdown_guest')
            done['task'] = task or done['task']
    return done


def ensure(client, vm, opts, check_mode):
    """Bring the VM to opts['state']: the module result (changed, vm, power_state, steps, forced, task, diff)."""
    props = fetch(client, vm, POWER_PATHS)
    vm_name = props['name']
    before = power_facts(props)
    steps = plan_steps(before, opts['state'], opts['force_after_timeout'], vm_name)
    after = dict(before)
    done = {'steps': steps if check_mode else [], 'forced': opts['state'] == 'shutdown_guest' and steps == ['power_off'],
            'task': None, 'waited': 0.0}
    if steps and check_mode:
        after['power_state'] = END_STATE[opts['state']]
    elif steps:
        done = apply_steps(client, vm, vm_name, steps, opts)
        after = power_facts(fetch(client, vm, POWER_PATHS))
    result = {'changed': bool(steps),
              'vm': {'name': vm_name, 'moid': vm._moId, 'instance_uuid': props.get('config.instanceUuid')},
              'power_state': after['power_state'], 'power_state_before': before['power_state'],
              'steps': done['steps'], 'forced': done['forced'], 'shutdown_seconds': done['waited'],
              'task': done['task']}
    result['diff'] = {'before': {'power_state': before['power_state']},
                      'after': {'power_state': after['power_state']}}
    return result
