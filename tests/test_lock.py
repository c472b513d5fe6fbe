"""The locked dependency set (scripts/lock.py, constraints.txt): the environment `make install` built is
exactly the lock, and the check names every difference rather than passing a drifted environment."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"


def _check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "lock.py"), "check", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_this_environment_is_the_lock():
    got = _check(LOCK)
    assert got.returncode == 0, got.stderr
    assert "transformers==" in LOCK.read_text() and "\ntorch==" not in LOCK.read_text()


def test_a_drifted_environment_is_named_with_the_fix(tmp_path):
    lines = LOCK.read_text().splitlines()
    drifted = [("transformers==5.0.0" if line.startswith("transformers==") else line)
               for line in lines if not line.startswith("numpy==")] + ["not-a-real-package==1.0"]
    bad = tmp_path / "constraints.txt"
    bad.write_text("\n".join(drifted) + "\n")
    got = _check(bad)
    assert got.returncode == 1
    assert "transformers: installed" in got.stderr and "locked 5.0.0" in got.stderr
    assert "numpy: installed" in got.stderr and "not in the lock" in got.stderr
    assert "not-a-real-package: locked 1.0, not installed" in got.stderr
    assert "make lock" in got.stderr


def test_a_malformed_lock_line_is_refused_with_its_line_number(tmp_path):
    bad = tmp_path / "constraints.txt"
    bad.write_text("# header\ntransformers>=5\n")
    got = _check(bad)
    assert got.returncode != 0 and "constraints.txt:2" in got.stderr and "name==version" in got.stderr
