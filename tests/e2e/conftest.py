"""End-to-end fixtures: a real JupyterLab server and Debian's Chromium driven by playwright-python.

* ``lab`` (session): ``python -m jupyterlab`` from this environment on a free 127.0.0.1 port, token off,
  ``expose_app_in_browser``, a temporary root dir / settings / workspaces, news & update checks off. The kernel
  imports this checkout (``PYTHONPATH``). Killed by PID at the end; its log is printed if startup fails.
* ``browser`` (session): ``/usr/bin/chromium`` (or ``$ATTATTR_CHROMIUM``) headless; nothing is downloaded.
* ``context``/``page`` (function): every request that does not go to the Lab server (or to ``file:``,
  ``data:``, ``blob:``) is aborted and recorded in ``page.blocked``.
* ``LabNotebook``: write a notebook, open it, run cells, read outputs.

Everything waits on conditions (``wait_for_function``) — no fixed sleeps. Screenshots go to
``tests/artifacts/`` (git-ignored).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error

import pytest

from .e2e_support import ARTIFACTS, CHROMIUM_ARGS, REPO, Lab, chromium_path, hermetic_context


def pytest_collection_modifyitems(config, items):
    here = pathlib.Path(__file__).parent
    for it in items:
        if here in pathlib.Path(str(it.fspath)).parents:
            it.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    settings = tmp / "settings"
    for d in (root, settings, tmp / "workspaces", tmp / "config", tmp / "runtime", tmp / "ipython"):
        d.mkdir(parents=True, exist_ok=True)
    # user settings: no news / update checks, no extension manager (it would query PyPI)
    for plugin, value in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    }.items():
        f = settings / (plugin + ".jupyterlab-settings")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port = _free_port()
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
    })
    env.pop("ATTATTR_SMALL", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.open_browser=False", "--allow-root"]
    log = tmp / "lab.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
    server = Lab(proc, port, root, log)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode} during startup:\n{server.log_tail()}",
                        pytrace=False)
        try:
            server.api("/api/status")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                _stop(proc)
                pytest.fail(f"JupyterLab did not answer on {server.base} within 90 s:\n{server.log_tail()}",
                            pytrace=False)
            time.sleep(0.2)  # polling interval while the server boots
    yield server
    try:
        server.api("/api/shutdown", method="POST")   # also shuts its kernels down
        proc.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):   # URLError is an OSError; _stop() below kills it
        pass
    _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)   # the group of the server we started (its kernels too)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def playwright_instance():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):
    b = playwright_instance.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def lab_context(browser, lab):
    ctx = hermetic_context(browser, lab.is_local)
    yield ctx
    ctx.close()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS




@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On an e2e failure, save a screenshot of every open page to tests/artifacts/failure-<test>-<n>.png."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    browser = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if browser is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    n = 0
    for ctx in browser.contexts:
        for page in ctx.pages:
            # a closed/crashed page must not mask the real failure
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"failure-{item.name}-{n}.png"), full_page=True)
                n += 1
