# -*- coding: utf-8 -*-
# Copyright: (c) 2026, replicator.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test runs this file as ``__main__`` inside a fresh virtual environment with pip's
install options and the pinned infrastructure packages (``pip==X`` and friends) as arguments.
It seeds pip from the interpreter's bundled ``ensurepip`` wheel (no network), then lets that
pip install the pinned packages from the configured package index.

``ensurepip`` runs in a subprocess on purpose: ``ensurepip.bootstrap()`` in-process points
``PIP_CONFIG_FILE`` at /dev/null, which would drop the machine's index settings.
"""

from __future__ import absolute_import, division, print_function

import subprocess
import sys


def main():
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
