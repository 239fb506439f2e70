"""Real-browser fixtures: Debian's headless Chromium driven by selenium, and a JupyterLab server on 127.0.0.1.

Chromium and chromedriver come from ``tools/install_browser.sh`` (apt-get, as root) when they are missing; the tests
skip, saying why, only where they cannot be installed or selenium is not (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1800,1400"]  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[Path, Path]:
    """(chromium, chromedriver), installed with tools/install_browser.sh if missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        try:
            out = subprocess.run(["bash", str(ROOT / "tools" / "install_browser.sh")], capture_output=True, text=True,
                                 timeout=900)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.skip("installing chromium took more than 15 minutes")
        if out.returncode != 0:
            pytest.skip(f"chromium could not be installed: {(out.stderr or out.stdout).strip()[-300:]}")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is still missing after tools/install_browser.sh")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chromium_paths, tmp_path):
    """A headless Chromium (selenium WebDriver) with a new empty profile; quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(chromium_paths[0])
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'chrome-profile'}"]:
        opts.add_argument(flag)
    service = Service(executable_path=str(chromium_paths[1]), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    try:
        driver.set_page_load_timeout(90)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def jupyter_lab(tmp_path):
    """Start JupyterLab on 127.0.0.1 (free port, random token) serving ``tmp_path / "lab"``; yields
    (base_url, token, root_dir); the server and its kernels are killed afterwards."""
    root = tmp_path / "lab"
    root.mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab"] if jupyter.exists() else [sys.executable, "-m", "jupyter", "lab"]
    cmd += [
        "--no-browser",
        f"--IdentityProvider.token={token}",
        "--port",
        str(port),
        "--ip",
        "127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:  # CI and these machines run as root
        cmd.append("--allow-root")
    env = dict(os.environ)
    for var, sub in [("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"), ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
                     ("IPYTHONDIR", "ipython")]:  # fmt: skip
        env[var] = str(tmp_path / sub)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    log = open(tmp_path / "jupyter-lab.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({proc.returncode}): {_tail(tmp_path / 'jupyter-lab.log')}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer in 90 s: {_tail(tmp_path / 'jupyter-lab.log')}")
            time.sleep(0.5)
        yield base, token, root
    finally:
        _stop(proc, base, token)
        log.close()


def _request(url: str, method: str = "GET", timeout: float = 10.0) -> bytes:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels and the server down through the REST API, then SIGTERM / SIGKILL the server's process group
    if it is still running (kernels run in sessions of their own and are stopped by the API calls)."""
    if proc.poll() is not None:
        return
    try:
        for kernel in json.loads(_request(f"{base}/api/kernels?token={token}")):
            _request(f"{base}/api/kernels/{kernel['id']}?token={token}", "DELETE", timeout=20)
        _request(f"{base}/api/shutdown?token={token}", "POST")
        proc.wait(timeout=15)
        return
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""
