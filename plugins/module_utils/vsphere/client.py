# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vSphere connection: log in once per module run, expose the service content, log out at the end."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket
import ssl

try:
    from pyVim.connect import SmartConnect, Disconnect
    from pyVmomi import vim, vmodl
    HAS_PYVMOMI = True
    PYVMOMI_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the import sanity test
    SmartConnect = Disconnect = vim = vmodl = None
    HAS_PYVMOMI = False
    PYVMOMI_IMPORT_ERROR = exc

from ansible_collections.replicator.vsphere.plugins.module_utils.vsphere.errors import (
    ConnectionFailed, fault_name, from_fault,
)


def ssl_context(validate_certs, ca_path=None):
    """The TLS context for the connection: verify against ca_path (or the system store), or not at all."""
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()


class VsphereClient(object):
    """One logged-in session to a vCenter or ESXi host.

    `content` is the ServiceContent read once at login (no further round trip per access).
    """

    def __init__(self, hostname, username, password, port=443, validate_certs=True, ca_path=None,
                 proxy_host=None, proxy_port=None, timeout=60):
        if not HAS_PYVMOMI:
            raise ConnectionFailed('The pyvmomi Python library is required: %s' % PYVMOMI_IMPORT_ERROR,
                                   hint='pip install pyvmomi on the host that runs the module.')
        missing = [name for name, value in (('hostname', hostname), ('username', username), ('password', password))
                   if not value]
        if missing:
            raise ConnectionFailed('Missing connection option(s): %s' % ', '.join(missing),
                                   hint='Set them as module options, with module_defaults for group '
                                        '"replicator.vsphere.vsphere", or as VMWARE_HOST / VMWARE_USER / '
                                        'VMWARE_PASSWORD environment variables.')
        self.hostname = hostname
        self.port = port
        self.timeout = timeout
        self.si = self._login(hostname, username, password, port, validate_certs, ca_path, proxy_host, proxy_port,
                              timeout)
        self.content = self.si.content

    @property
    def endpoint(self):
        return '%s:%s' % (self.hostname, self.port)

    def _login(self, hostname, username, password, port, validate_certs, ca_path, proxy_host, proxy_port, timeout):
        kwargs = dict(host=hostname, user=username, pwd=password, port=port,
                      sslContext=ssl_context(validate_certs, ca_path), httpConnectionTimeout=timeout)
        if proxy_host:
            kwargs.update(httpProxyHost=proxy_host, httpProxyPort=proxy_port or 80)
        where = 'vSphere at %s:%s' % (hostname, port)
        try:
            return SmartConnect(**kwargs)
        except vim.fault.InvalidLogin as exc:
            raise from_fault(exc, 'Login to %s as %s' % (where, username), ConnectionFailed)
        except (vim.fault.VimFault, vmodl.MethodFault) as exc:
            raise from_fault(exc, 'Login to %s' % where, ConnectionFailed)
        except ssl.SSLError as exc:
            raise ConnectionFailed('TLS handshake with %s failed: %s' % (where, exc), fault=type(exc).__name__,
                                   hint='Give the CA that signed the server certificate with ca_path '
                                        '(VMWARE_CA_PATH), or set validate_certs: false for a lab.')
        except (socket.error, OSError) as exc:
            raise ConnectionFailed('Cannot reach %s: %s' % (where, exc), fault=type(exc).__name__,
                                   hint='Check hostname, port, proxy settings and that the host is up.')
        except Exception as exc:  # pylint: disable=broad-except
            # pyvmomi wraps some transport failures in plain exceptions; keep the original class for the user.
            raise ConnectionFailed('Cannot log in to %s: %s' % (where, exc), fault=fault_name(exc),
                                   hint='Check hostname, port and that the endpoint is a vCenter or ESXi SDK.')

    def close(self):
        """Log out; never raises (a failed logout must not hide the real result)."""
        si, self.si = self.si, None
        if si is not None:
            try:
                Disconnect(si)
            except Exception:  # pylint: disable=broad-except
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def connect(settings):
    """A VsphereClient from a dict of connection settings (see vsphere_args.connection_params)."""
    return VsphereClient(**settings)
