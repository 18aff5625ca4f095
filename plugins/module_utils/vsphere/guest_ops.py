# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command in a VM's guest through VMware Tools guest operations (GuestOperationsManager), for guests that the
inventory cannot reach over SSH or WinRM.

  check    one PropertyCollector read: powered on, VMware Tools running (else a clear error, no guest call)
  prepare  CreateTemporaryDirectoryInGuest: a private directory for the output files
  start    StartProgramInGuest: the guest's shell runs the command, stdout and stderr redirected into that directory
  wait     ListProcessesInGuest for the pid until it has an endTime; on timeout TerminateProcessInGuest
  fetch    InitiateFileTransferFromGuest + HTTPS GET of each output file, at most `output_limit` bytes each
  clean    DeleteDirectoryInGuest (recursive), always

The guest credentials travel only in the `auth` argument of these calls; no message or result carries them.
command_line and the helpers above `run_guest_command` are pure (no pyvmomi, no I/O).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.urls import open_url

try:
    from pyVmomi import vim, vmodl
except ImportError:  # pragma: no cover - the client reports the missing library
    vim = vmodl = None

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import VsphereError, fault_name, from_fault
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.lookup import vm_summary
from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.properties import fetch

GUEST_PATHS = ['name', 'config.instanceUuid', 'runtime.powerState', 'guest.toolsRunningStatus', 'guest.guestFamily']

TEMP_PREFIX = 'replicator-'

# Hints for the faults of guest operations, by pyvmomi class name.
GUEST_HINTS = {
    'InvalidGuestLogin': 'guest_username and guest_password are an account of the guest operating system (not the '
                         'vCenter login); check them.',
    'GuestPermissionDenied': 'The guest account may not do this; use an account allowed to run the command.',
    'GuestOperationsUnavailable': 'VMware Tools must be running in the guest (and guest operations enabled).',
    'InvalidPowerState': 'Guest operations need a powered-on VM.',
    'FileNotFound': 'A path does not exist in the guest: check shell and working_directory.',
    'GuestProcessNotFound': 'The process ended or the guest restarted.',
}


class GuestCommandError(VsphereError):
    """A guest operation failed or the command did not succeed; carries what is known of the run."""

    def __init__(self, msg, fault=None, hint=None, task=None, details=None):
        super(GuestCommandError, self).__init__(msg, fault=fault, hint=hint, task=task)
        self.details = details or {}

    def to_result(self):
        result = super(GuestCommandError, self).to_result()
        result.update(self.details)
        return result


def shell_flag(shell):
    """The option that makes `shell` run one command line: cmd.exe /c, PowerShell -Command, POSIX shells -c."""
    base = shell.replace('\\', '/').rsplit('/', 1)[-1].lower()
    if base in ('cmd', 'cmd.exe'):
        return '/c'
    if base in ('powershell', 'powershell.exe', 'pwsh', 'pwsh.exe'):
        return '-Command'
    return '-c'


def sh_quote(text):
    """POSIX single-quoting, so the guest's shell sees `text` as one word."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def command_line(shell, command, stdout_path, stderr_path):
    """The StartProgramInGuest arguments (after programPath = shell): run `command`, output into the two files.

    The guest runs `"programPath" arguments` through its own command processor (/bin/sh -c on Linux, CreateProcess
    on Windows where cmd.exe parses the rest), so the redirections here apply to the whole command.
    """
    flag = shell_flag(shell)
    if flag == '-c':
        return '-c %s > %s 2> %s' % (sh_quote(command), sh_quote(stdout_path), sh_quote(stderr_path))
    return '%s %s > "%s" 2> "%s"' % (flag, command, stdout_path, stderr_path)


def guest_join(directory, name, family=None):
    """A file path inside a guest directory, with the guest's separator."""
    windows = (family or '').lower().startswith('windows') or ('\\' in directory and '/' not in directory)
    sep = '\\' if windows else '/'
    return directory.rstrip('/\\') + sep + name


def poll_delays(first=0.2, factor=1.5, longest=2.0):
    """Endless waits between process polls: 0.2 s, growing to at most 2 s."""
    delay = first
    while True:
        yield delay
        delay = min(longest, delay * factor)


def transfer_url(url, hostname, port):
    """An InitiateFileTransferFromGuest URL with its host placeholder '*' replaced by the endpoint we are connected
    to (ESXi answers '*' when reached directly)."""
    parts = urlsplit(url)
    host, sep, url_port = parts.netloc.rpartition(':') if ':' in parts.netloc else (parts.netloc, '', '')
    if host != '*':
        return url
    netloc = '%s:%s' % (hostname, url_port if sep else port)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def decode_output(data, size, limit):
    """(text, truncated) of one output file: at most `limit` bytes, decoded as UTF-8 (bad bytes replaced)."""
    text = data[:limit].decode('utf-8', 'replace')
    return text, size > limit or len(data) > limit


class GuestSession(object):
    """The guest operations of one VM with one set of guest credentials."""

    def __init__(self, client, vm, vm_name, username, password, validate_certs=True, ca_path=None):
        self.client = client
        self.vm = vm
        self.vm_name = vm_name
        self.username = username
        manager = client.content.guestOperationsManager
        self.processes = manager.processManager
        self.files = manager.fileManager
        self.auth = vim.vm.guest.NamePasswordAuthentication(username=username, password=password,
                                                            interactiveSession=False)
        self.validate_certs = validate_certs
        self.ca_path = ca_path

    def call(self, action, method, **kwargs):
        """One guest operation; faults become GuestCommandError with a hint (never the credentials)."""
        try:
            return method(vm=self.vm, auth=self.auth, **kwargs)
        except (vim.fault.VimFault, vmodl.MethodFault) as exc:
            error = from_fault(exc, "%s in the guest of VM '%s' (as guest user '%s')"
                               % (action, self.vm_name, self.username), GuestCommandError)
            error.hint = GUEST_HINTS.get(fault_name(exc)) or error.hint
            raise error

    def temp_dir(self):
        return self.call('Creating a temporary directory', self.files.CreateTemporaryDirectoryInGuest,
                         prefix=TEMP_PREFIX, suffix='')

    def start(self, program, arguments, working_directory=None, environment=None):
        spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath=program, arguments=arguments)
        if working_directory:
            spec.workingDirectory = working_directory
        if environment:
            spec.envVariables = ['%s=%s' % (k, v) for k, v in sorted(environment.items())]
        return self.call('Starting %s' % program, self.processes.StartProgramInGuest, spec=spec)

    def process(self, pid):
        found = self.call('Reading process %s' % pid, self.processes.ListProcessesInGuest, pids=[pid]) or []
        for info in found:
            if info.pid == pid:
                return info
        raise GuestCommandError("Process %s vanished from the guest of VM '%s'" % (pid, self.vm_name),
                                fault='GuestProcessNotFound', hint=GUEST_HINTS['GuestProcessNotFound'])

    def terminate(self, pid):
        try:
            self.call('Stopping process %s' % pid, self.processes.TerminateProcessInGuest, pid=pid)
        except GuestCommandError as exc:
            if exc.fault != 'GuestProcessNotFound':  # it ended by itself meanwhile
                raise

    def read_file(self, path, limit):
        """(text, truncated) of a guest file, at most `limit` bytes transferred."""
        try:
            info = self.call('Reading %s' % path, self.files.InitiateFileTransferFromGuest, guestFilePath=path)
        except GuestCommandError as exc:
            if exc.fault == 'FileNotFound':  # the command removed it: no output to show
                return '', False
            raise
        if not info.size or limit <= 0:
            return '', bool(info.size)
        url = transfer_url(info.url, self.client.hostname, self.client.port)
        try:
            response = open_url(url, method='GET', validate_certs=self.validate_certs, ca_path=self.ca_path,
                                timeout=self.client.timeout)
            try:
                data = response.read(limit + 1)
            finally:
                response.close()
        except (IOError, OSError) as exc:
            raise GuestCommandError("Fetching %s from the guest of VM '%s' failed: %s" % (path, self.vm_name, exc),
                                    fault=type(exc).__name__,
                                    hint='The file transfer goes to the ESXi host of the VM over HTTPS: the host '
                                         'must be reachable from where the module runs.')
        return decode_output(data, info.size, limit)

    def remove_dir(self, path):
        """Best effort: a leftover directory must not hide the command's result."""
        try:
            self.call('Removing %s' % path, self.files.DeleteDirectoryInGuest, directoryPath=path, recursive=True)
            return True
        except GuestCommandError:
            return False


def check_guest(props, vm_name):
    """Refuse early, with a clear message, a guest that cannot run a command (pure: reads GUEST_PATHS values)."""
    power = str(props.get('runtime.powerState') or '')
    if power != 'poweredOn':
        raise GuestCommandError("VM '%s' is %s: guest operations need a powered-on VM" % (vm_name, power or 'unknown'),
                                fault='InvalidPowerState', hint=GUEST_HINTS['InvalidPowerState'])
    tools = str(props.get('guest.toolsRunningStatus') or '')
    if tools != 'guestToolsRunning':
        raise GuestCommandError("VMware Tools are not running in the guest of VM '%s' (%s)" % (vm_name, tools or 'unknown'),
                                fault='GuestOperationsUnavailable', hint=GUEST_HINTS['GuestOperationsUnavailable'])


def run_guest_command(client, vm, opts, check_mode, clock=time.time, sleep=time.sleep):
    """The guest_command module body. opts: guest_username, guest_password, command, shell, working_directory,
    environment, command_timeout, output_limit, validate_certs, ca_path."""
    props = fetch(client, vm, GUEST_PATHS)
    name = props['name']
    result = {'changed': True, 'vm': vm_summary(vm, props), 'rc': None, 'stdout': '', 'stderr': '',
              'stdout_truncated': False, 'stderr_truncated': False, 'pid': None, 'seconds': 0.0}
    check_guest(props, name)
    if check_mode:
        result['msg'] = "Check mode: the command was not run in the guest of VM '%s'" % name
        return result
    session = GuestSession(client, vm, name, opts['guest_username'], opts['guest_password'],
                           opts.get('validate_certs', True), opts.get('ca_path'))
    family = str(props.get('guest.guestFamily') or '')
    work = session.temp_dir()
    out_path, err_path = guest_join(work, 'stdout', family), guest_join(work, 'stderr', family)
    started = clock()
    try:
        pid = session.start(opts['shell'], command_line(opts['shell'], opts['command'], out_path, err_path),
                            opts.get('working_directory'), opts.get('environment'))
        result['pid'] = pid
        info = _wait(session, pid, started, opts['command_timeout'], clock, sleep)
        if info is None:
            session.terminate(pid)
        result['seconds'] = round(clock() - started, 3)
        limit = opts['output_limit']
        result['stdout'], result['stdout_truncated'] = session.read_file(out_path, limit)
        result['stderr'], result['stderr_truncated'] = session.read_file(err_path, limit)
        if info is None:
            raise GuestCommandError("The command did not finish within %s s in the guest of VM '%s'; process %s was "
                                    "killed" % (opts['command_timeout'], name, pid), fault='Timeout',
                                    hint='Raise command_timeout, or make the command return sooner.',
                                    details=dict(result, timed_out=True))
        result['rc'] = info.exitCode if info.exitCode is not None else 0
    finally:
        session.remove_dir(work)
    if result['rc'] != 0:
        raise GuestCommandError("The command exited with rc %s in the guest of VM '%s'" % (result['rc'], name),
                                fault='NonZeroExit', details=result)
    return result


def _wait(session, pid, started, timeout, clock, sleep):
    """The process info once the process ended, or None when `timeout` seconds passed first."""
    for delay in poll_delays():
        info = session.process(pid)
        if info.endTime is not None:
            return info
        left = started + timeout - clock()
        if left <= 0:
            return None
        sleep(min(delay, left))
    return None  # pragma: no cover - poll_delays never ends
