# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote receiver over SSH (or any command that runs a python3 with stdin/stdout connected to us).

The receiver code travels on stdin: a tiny bootstrap given to `python3 -c` reads a length-prefixed bundle (the
module_utils sources the receiver needs, served from memory by an import hook), runs it, and the same stdin/stdout
then carry the binary wire stream (docs/wire-format.md). `python3 -` is not used because it reads its program up to
the end of stdin. The target host needs only python3, zstandard and xxhash; nothing is installed there. The
receiver keeps the compiled bundle modules in the user's cache directory (~/.cache/replicator-vsphere, or
$XDG_CACHE_HOME), so later starts skip compiling them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading

from ansible_collections.replicator.vsphere.plugins.module_utils.datapath import wire
from ansible_collections.replicator.vsphere.plugins.module_utils.datapath.digests import DigestMap

PACKAGE = 'ansible_collections.replicator.vsphere.plugins.module_utils'
# What travels to the receiver host: every module of these packages, and nothing else (a unit test holds them to
# importing only each other and the standard library).
BUNDLE_PACKAGES = ('datapath', 'store', 'receiver')
# What the bundle runs: the block stream receiver, or one replica store operation (JSON in, JSON out).
ENTRIES = {
    'receiver': 'from %(pkg)s.receiver.stream import serve\n_finish(serve(sys.stdin.buffer, _out))\n',
    'store_op': 'from %(pkg)s.receiver.store_ops import serve_request\n_finish(serve_request(sys.stdin.buffer, _out))\n',
}
BOOTSTRAP = ('import sys;b=sys.stdin.buffer;n=int(b.readline());'
             'exec(compile(b.read(n),"<replicator-receiver>","exec"))')
STDERR_KEEP = 64 * 1024

_LOADER = '''
import importlib.machinery, marshal, os, sys, types
_PKG = %(pkg)r
for _i in range(1, _PKG.count('.') + 2):
    _name = '.'.join(_PKG.split('.')[:_i])
    if _name not in sys.modules:
        _m = types.ModuleType(_name)
        _m.__path__ = []
        sys.modules[_name] = _m


# A plain finder/loader: importlib.abc would import importlib.resources and pathlib (~10 ms of start-up).
class _BundleFinder(object):
    def find_spec(self, fullname, path=None, target=None):
        short = fullname[len(_PKG) + 1:] if fullname.startswith(_PKG + '.') else None
        if short in SOURCES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=short in PACKAGES)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        short = module.__name__[len(_PKG) + 1:]
        if SOURCES[short]:      # a package has no code of its own
            exec(_code(short), module.__dict__)


# Compiled modules are kept in the user's cache directory, named by the digest of their source and the
# interpreter's cache tag (compiling the bundle is ~20 ms of every receiver start). A directory that is not the
# user's own, or open to others, is not used; any failure falls back to compiling.
def _cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    path = os.path.join(base, 'replicator-vsphere', 'bundle-%%s' %% sys.implementation.cache_tag)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


_CACHE = _cache_dir() if sys.implementation.cache_tag else None


def _code(short):
    path = os.path.join(_CACHE, '%%s-%%s.bin' %% (short, DIGESTS[short])) if _CACHE else None
    if path:
        try:
            with open(path, 'rb') as f:
                return marshal.loads(f.read())
        except (OSError, ValueError, EOFError, TypeError):
            pass
    code = compile(SOURCES[short], '<bundle>/%%s.py' %% short, 'exec')
    if path:
        tmp = '%%s.%%d.tmp' %% (path, os.getpid())
        try:
            for name in os.listdir(_CACHE):      # older versions of this module
                if name.startswith(short + '-') and name.endswith('.bin'):
                    os.unlink(os.path.join(_CACHE, name))
            with open(tmp, 'wb') as f:
                f.write(marshal.dumps(code))
            os.replace(tmp, path)
        except OSError:
            pass
    return code


# Once the entry returns, its answer is written and every file it wrote is closed (the bundle writes through raw
# descriptors, with no Python-level buffers): exit without the interpreter's teardown of modules and objects, which
# the sender would otherwise wait for at the end of every cycle and store operation.
def _finish(code):
    for _f in (sys.stdout, sys.stderr):
        try:
            _f.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


sys.meta_path.insert(0, _BundleFinder())
_out = os.dup(1)
os.dup2(2, 1)
'''


class TransportError(Exception):
    """The remote receiver could not be started or went away."""


def module_utils_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundle_sources(base=None):
    """{'datapath.wire': source, ...} of every module of the bundle's packages found under `base` (module_utils),
    with each package itself as an empty module ('datapath': '')."""
    base = base or module_utils_dir()
    sources = {}
    for package in BUNDLE_PACKAGES:
        folder = os.path.join(base, package)
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        sources[package] = ''
        for name in names:
            if name.endswith('.py') and name != '__init__.py':
                with open(os.path.join(folder, name), 'r') as f:
                    sources['%s.%s' % (package, name[:-3])] = f.read()
    return sources


def build_bundle(entry='receiver'):
    """Self-contained program (bytes): the sources of the bundle's packages, an in-memory import hook, and the
    entry point (`receiver`: the block stream; `store_op`: one replica store operation)."""
    sources = bundle_sources()
    missing = [m for m in ('receiver.stream', 'receiver.store_ops', 'datapath.wire', 'datapath.digests',
                           'datapath.endpoint', 'store.replica_store', 'store.journal') if m not in sources]
    if missing:
        raise TransportError('cannot build the receiver bundle: missing module_utils %s' % ', '.join(missing))
    digests = dict((name, hashlib.sha256(text.encode('utf-8')).hexdigest()[:40]) for name, text in sources.items())
    program = ('SOURCES = %r\nDIGESTS = %r\nPACKAGES = %r\n' % (sources, digests, BUNDLE_PACKAGES)
               + _LOADER % {'pkg': PACKAGE} + ENTRIES[entry] % {'pkg': PACKAGE})
    return program.encode('utf-8')


class ReceiverSpec(object):
    """Run the receiver as a local child process (python + bootstrap): the wire path without SSH."""

    def __init__(self, python=None):
        self.python = python or sys.executable

    def argv(self):
        return [self.python, '-c', BOOTSTRAP]

    def describe(self):
        return 'local process %s' % self.python


class SshReceiverSpec(ReceiverSpec):
    """Run the receiver on `host` through ssh. options: extra `-o Key=Value` strings; ssh_args: raw extra args."""

    def __init__(self, host, user=None, port=None, identity_file=None, python='python3', options=(), ssh_args=(),
                 ssh_command='ssh', config_file=None, connect_timeout=20):
        ReceiverSpec.__init__(self, python=python)
        if not host:
            raise TransportError('an SSH receiver needs a host')
        self.host = host
        self.user = user
        self.port = port
        self.identity_file = identity_file
        self.options = list(options)
        self.ssh_args = list(ssh_args)
        self.ssh_command = ssh_command
        self.config_file = config_file
        self.connect_timeout = connect_timeout

    def argv(self):
        cmd = [self.ssh_command, '-T', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=%d' % self.connect_timeout]
        if self.config_file:
            cmd += ['-F', self.config_file]
        if self.port:
            cmd += ['-p', str(self.port)]
        if self.identity_file:
            cmd += ['-i', self.identity_file]
        if self.user:
            cmd += ['-l', self.user]
        for opt in self.options:
            cmd += ['-o', opt]
        cmd += self.ssh_args
        cmd += ['--', self.host, '%s -c %s' % (shlex.quote(self.python), shlex.quote(BOOTSTRAP))]
        return cmd

    def describe(self):
        return 'ssh %s%s' % ('%s@' % self.user if self.user else '', self.host)


class StreamChannel(object):
    """Sender side of the wire: same calls as the in-process channel, encoded as frames."""

    def __init__(self, spec):
        self.spec = spec
        self.result = None
        self.ops = 0
        self._stderr = bytearray()
        try:
            self.proc = subprocess.Popen(spec.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, bufsize=0, close_fds=True)
        except OSError as e:
            raise TransportError('cannot start the receiver (%s): %s' % (spec.describe(), e))
        self._err_thread = threading.Thread(target=self._drain_stderr, name='receiver-stderr')
        self._err_thread.daemon = True
        self._err_thread.start()
        wire.widen_pipe(self.proc.stdin)
        bundle = build_bundle()
        self.writer = None
        self.reader = wire.FrameReader(self.proc.stdout)
        self._guard(lambda: os.write(self.proc.stdin.fileno(), b'%d\n' % len(bundle)))
        self._guard(lambda: self._write_all(bundle))
        self.writer = self._guard(lambda: wire.FrameWriter(self.proc.stdin.fileno()))

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.proc.stdin.fileno(), view):]

    def _drain_stderr(self):
        while True:
            chunk = self.proc.stderr.read(4096)
            if not chunk:
                return
            self._stderr += chunk
            del self._stderr[:-STDERR_KEEP]

    @property
    def stderr_text(self):
        return bytes(self._stderr).decode('utf-8', 'replace').strip()

    @property
    def bytes_sent(self):
        return self.writer.bytes if self.writer else 0

    def _fail(self, what):
        """The remote end went away: prefer its ERROR frame, then its exit status and stderr."""
        try:
            frame = self.reader.read_frame()
            if frame is not None and frame.op == wire.ERROR:
                raise TransportError('receiver (%s) failed: %s' % (self.spec.describe(), frame.json().get('message')))
        except wire.WireError:
            pass
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        self._err_thread.join(2)
        hint = self.stderr_text
        lost = TransportError('receiver (%s) %s (exit status %s)%s' % (
            self.spec.describe(), what, rc, ': ' + hint[-2000:] if hint else ''))
        lost.link_lost = True   # no answer from the receiver: what it did last is not known here
        raise lost

    def _guard(self, func):
        try:
            return func()
        except (BrokenPipeError, ConnectionResetError):
            return self._fail('closed the connection')

    def _expect(self, *ops):
        try:
            return self.reader.expect(*ops)
        except wire.PeerError as e:
            raise TransportError('receiver (%s) failed: %s' % (self.spec.describe(), e))
        except wire.WireError as e:
            return self._fail('stopped speaking the protocol (%s)' % e)

    def hello(self, params):
        self._guard(lambda: self.writer.json(wire.HELLO, params))
        state = self._expect(wire.STATE).json()
        maps = {}
        for _sid in state.get('maps') or ():
            frame = self._expect(wire.MAP)
            maps[frame.source] = DigestMap.from_bytes(frame.payload)
        return state, maps

    def data(self, offset, length, digest, payload, compressed, partial=False):
        self.ops += 1
        flags = (wire.FLAG_ZSTD if compressed else 0) | (wire.FLAG_PARTIAL if partial else 0)
        self._guard(lambda: self.writer.frame(wire.DATA, payload, flags=flags, offset=offset, length=length,
                                              digest=digest))

    def zero(self, offset, length, digest, partial=False):
        self.ops += 1
        self._guard(lambda: self.writer.frame(wire.ZERO, flags=wire.FLAG_PARTIAL if partial else 0, offset=offset,
                                              arg=length, digest=digest))

    @property
    def can_splice(self):
        return bool(self.writer is not None and self.writer.can_splice)

    def data_from_file(self, offset, length, digest, src_fd, src_offset):
        """A raw DATA op whose bytes are spliced from the source file (see FrameWriter.frame_from_file)."""
        self.ops += 1
        self._guard(lambda: self.writer.frame_from_file(wire.DATA, src_fd, src_offset, length, offset=offset,
                                                        length=length, digest=digest))

    def copy(self, offset, length, digest, source, src_offset):
        self.ops += 1
        self._guard(lambda: self.writer.frame(wire.COPY, source=source, offset=offset, arg=src_offset, length=length,
                                              digest=digest))

    def end(self, info):
        info = dict(info, ops=self.ops)
        self._guard(lambda: self.writer.json(wire.END, info))
        frame = self._expect(wire.NEED, wire.COMMIT)
        if frame.op == wire.NEED:
            return list(frame.json()['blocks'])
        self.result = frame.json()
        return []

    def abort(self, message='sender aborted'):
        if self.writer is not None and self.proc.poll() is None:
            try:
                self.writer.json(wire.ERROR, {'message': message})
            except OSError:
                pass

    def close(self):
        for f in (self.proc.stdin,):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._err_thread.join(2)
        self.proc.stdout.close()
        self.proc.stderr.close()


def run_store_op(receiver, request, timeout=3600):
    """Run one replica store operation (store_ops.run) where the replica disk is: in-process for 'local', else
    on the receiver host (the same bundle the block stream uses, with the store_op entry point).

    Returns the operation's result dict; raises TransportError with the remote error message.
    """
    if receiver in (None, 'local'):
        from ansible_collections.replicator.vsphere.plugins.module_utils.receiver.store_ops import run
        return run(request)
    bundle = build_bundle('store_op')
    payload = b'%d\n' % len(bundle) + bundle + json.dumps(request).encode('utf-8') + b'\n'
    try:
        proc = subprocess.run(receiver.argv(), input=payload, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TransportError('cannot run the %s operation on %s: %s' % (request.get('op'), receiver.describe(), e))
    try:
        answer = json.loads(proc.stdout.decode('utf-8'))
    except ValueError:
        err = proc.stderr.decode('utf-8', 'replace').strip()
        raise TransportError('the %s operation on %s failed (exit status %s)%s' % (
            request.get('op'), receiver.describe(), proc.returncode, ': ' + err[-2000:] if err else ''))
    if not answer.get('ok'):
        raise TransportError('the %s operation on %s failed: %s'
                             % (request.get('op'), receiver.describe(), answer.get('error')))
    return answer['result']
