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


def _server_env(tmp) -> dict:
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "IPYTHONDIR": str(tmp / "ipython"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1", "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
    })
    env.pop("ATTATTR_SMALL", None)
    return env


def _jupyter_dirs(tmp_path_factory, name, extension_manager=True):
    tmp = tmp_path_factory.mktemp(name)
    root = tmp / "root"
    settings = tmp / "settings"
    for d in (root, settings, tmp / "workspaces", tmp / "config", tmp / "runtime", tmp / "ipython"):
        d.mkdir(parents=True, exist_ok=True)
    # user settings: no news / update checks, no extension manager (it would query PyPI)
    plugins = {}
    if extension_manager:   # JupyterLab; Notebook 7 has neither plugin (settings without a schema break its start)
        plugins = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                   "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False}}
    for plugin, value in plugins.items():
        f = settings / (plugin + ".jupyterlab-settings")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    return tmp, root, settings


def _serve(cmd, env, root, log, port, ready_path, what):
    """Start a server process, wait until ``ready_path`` answers, yield the :class:`Lab` handle, stop it."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)
    server = Lab(proc, port, root, log)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} during startup:\n{server.log_tail()}", pytrace=False)
        try:
            server.get(ready_path)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                _stop(proc)
                pytest.fail(f"{what} did not answer on {server.base} within 90 s:\n{server.log_tail()}",
                            pytrace=False)
            time.sleep(0.2)  # polling interval while the server boots
    return server


def _jupyter_server(tmp_path_factory, name, module, app_class):
    tmp, root, settings = _jupyter_dirs(tmp_path_factory, name, extension_manager=module != "notebook")
    port = _free_port()
    cmd = [sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--{app_class}.expose_app_in_browser=True",
           f"--ServerApp.root_dir={root}", f"--{app_class}.user_settings_dir={settings}",
           f"--{app_class}.workspaces_dir={tmp / 'workspaces'}", f"--{app_class}.news_url=None",
           f"--{app_class}.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.open_browser=False", "--allow-root"]
    if module == "notebook":   # Notebook 7 has no news / update-check options
        cmd = [c for c in cmd if "news_url" not in c and "check_for_updates" not in c]
    return _serve(cmd, _server_env(tmp), root, tmp / f"{name}.log", port, "/api/status", module)


def _shutdown(server) -> None:
    try:
        server.api("/api/shutdown", method="POST")   # also shuts its kernels down
        server.proc.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):   # URLError is an OSError; _stop() below kills it
        pass
    _stop(server.proc)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    server = _jupyter_server(tmp_path_factory, "lab", "jupyterlab", "LabApp")
    yield server
    _shutdown(server)


@pytest.fixture(scope="session")
def notebook7(tmp_path_factory):
    """Notebook 7 (``python -m notebook``), same settings as ``lab``; ``window.jupyterapp`` is exposed."""
    pytest.importorskip("notebook", reason="Notebook 7 is in the test extra: pip install -e '.[test]'")
    server = _jupyter_server(tmp_path_factory, "nb7", "notebook", "JupyterNotebookApp")
    yield server
    _shutdown(server)


@pytest.fixture(scope="session")
def marimo_server(tmp_path_factory):
    """``marimo run`` of tests/e2e/marimo_app.py (read-only app mode, no token) on a free port."""
    pytest.importorskip("marimo", reason="marimo is in the test extra: pip install -e '.[test]'")
    tmp = tmp_path_factory.mktemp("marimo")
    port = _free_port()
    app = pathlib.Path(__file__).parent / "marimo_app.py"
    env = _server_env(tmp)
    env["MARIMO_NO_UPDATE_CHECK"] = "1"
    cmd = [sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1", "--port",
           str(port), "--no-token", "--no-sandbox"]
    server = _serve(cmd, env, tmp, tmp / "marimo.log", port, "/", "marimo run")
    yield server
    _stop(server.proc)


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
