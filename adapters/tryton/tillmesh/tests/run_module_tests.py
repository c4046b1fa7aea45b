#!/usr/bin/env python3
"""Runs test_module.py under Debian's trytond (/usr/bin/python3) with this
checkout's module made importable; exit 77 (SKIP) when trytond is missing."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'testing'))
import trytonlab  # noqa: E402

SYS_PY = trytonlab.SYS_PY
if subprocess.run([SYS_PY, '-c', 'import trytond.modules.sale, stdnum'],
        capture_output=True).returncode:
    print('SKIP tryton_module: Debian trytond 6.0 not installed '
        '(scripts/deps-tryton.sh)', flush=True)
    sys.exit(77)
with tempfile.TemporaryDirectory(prefix='tm-tryton-unit-') as root:
    lab = trytonlab.TrytonLab(root)
    env = dict(lab.env, DB_NAME=':memory:', TRYTOND_DATABASE__URI='sqlite://')
    env['PYTHONPATH'] = os.pathsep.join([lab.site, HERE])
    r = subprocess.run([SYS_PY, '-m', 'unittest', '-v', 'test_module'], env=env,
        cwd=HERE)
    sys.exit(r.returncode)
