"""The package root exposes the documented API, lazily for the heavier parts."""
import subprocess
import sys

import attattr_widgets as aw


def test_every_public_name_resolves():
    for name in aw.__all__:
        assert getattr(aw, name) is not None, name


def test_import_is_light():
    code = "import sys, attattr_widgets; print('bokeh' in sys.modules, 'anywidget' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
