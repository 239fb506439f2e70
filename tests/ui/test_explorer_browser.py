"""Notebook 06 in a real browser: JupyterLab on 127.0.0.1, headless Chromium (selenium), run all cells, move the
heatmap-threshold slider and check that the explorer's picture and people table were re-rendered by the kernel.

The notebook copy points at the committed COCO sample and starts on a real network (Open Model Zoo's
human-pose-estimation-0001, imported from the shipped IR; no notebook 00 run and no trained model needed).
Artefacts: screenshots in the test's tmp dir, the explorer's also in runs/ui/.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "06_explore.ipynb"
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
ARTEFACTS = ROOT / "runs" / "ui"
FIVE_SKIERS_INDEX = 15  # 000000197388.jpg, the 16th image of the sorted COCO sample: 5 labelled people

pytestmark = [pytest.mark.ui, pytest.mark.timeout(1200)]

NOTEBOOK_STATE_JS = """
const app = window.jupyterapp;
if (!app) return {ready: false, why: 'no app'};
const w = app.shell.currentWidget;
if (!w || !w.content || !w.sessionContext) return {ready: false, why: 'no notebook'};
const session = w.sessionContext.session;
const kernel = session ? session.kernel : null;
const cells = w.content.widgets.filter(c => c.model.type === 'code');
const errors = [];
for (const c of cells) {
  for (const o of c.model.outputs.toJSON()) {
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  }
}
return {ready: !!kernel, kernel: kernel ? kernel.status : null, cells: cells.length, errors: errors,
        executed: cells.filter(c => c.model.executionCount !== null && c.model.executionCount !== undefined).length};
"""


def prepare_notebook(lab_root: Path, work_dir: Path) -> Path:
    """A copy of notebook 06 whose parameters use the COCO sample and the shipped real networks."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = {
        "WORK_DIR": str(work_dir), "PROFILE": "demo", "SEED": FIVE_SKIERS_INDEX,
        "INFER_SPEC": str(ROOT / "specs" / "infer_spec_demo.yaml"),
        "FULL_DATASET_SPEC": str(ROOT / "data_pose_config" / "coco_spec.json"),
        "POSE_CONFIG": str(ROOT / "model_pose_config" / "bpnet_18joints.json"), "MODEL_PATH": "",
        "INPUT_SIZE": 256, "IMAGE_SETS": ["coco_sample"], "REAL_MODELS": True, "SAMPLE_DIR": str(SAMPLE),
        "MAX_IMAGES": 60,
        "DISPLAY_SIZE": 400, "TIMING_REPEATS": 1,
    }  # fmt: skip
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    out = lab_root / NOTEBOOK.name
    nbformat.write(nb, out)
    return out


def lab_settings(settings_dir: Path) -> None:
    """Render every cell (no windowing, so the explorer's output stays in the DOM) and skip the news prompt."""
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def wait_for(what: str, predicate, timeout: float, poll: float = 0.5):
    """Call ``predicate`` until it returns something truthy; fail after ``timeout`` seconds saying ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


def set_slider(driver, css_class: str, value: str) -> None:
    """Type ``value`` into an ipywidgets 8 slider's editable readout and press Enter (what a person does)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    readout = driver.find_element(By.CSS_SELECTOR, f".{css_class} .widget-readout")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", readout)
    readout.click()
    readout.send_keys(Keys.CONTROL, "a")
    readout.send_keys(value)
    readout.send_keys(Keys.ENTER)


def forward_passes(timing_text: str) -> int:
    match = re.search(r"forward passes (\d+)", timing_text)
    assert match, timing_text
    return int(match.group(1))


def test_explorer_in_jupyterlab(jupyter_lab, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, token, lab_root = jupyter_lab
    lab_settings(tmp_path / "lab-settings")  # JUPYTERLAB_SETTINGS_DIR of the server (read when the page loads)
    prepare_notebook(lab_root, tmp_path / "work")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver = browser
    try:
        driver.get(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
        wait_for(
            "the notebook's kernel",
            lambda: (lambda s: s if s.get("ready") and s.get("kernel") == "idle" else None)(
                driver.execute_script(NOTEBOOK_STATE_JS)
            ),
            180,
        )
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")

        def finished():
            s = driver.execute_script(NOTEBOOK_STATE_JS)
            if s.get("errors"):
                raise AssertionError(f"notebook 06 failed in the browser: {s['errors']}")
            return s if s.get("executed") == s.get("cells") and s.get("kernel") == "idle" else None

        state = wait_for("all cells to run", finished, 300, poll=1.0)
        assert state["cells"] >= 5
        metrics = json.loads((tmp_path / "work" / "06_explore" / "metrics.json").read_text())
        assert metrics["model"] == "human-pose-estimation-0001" and metrics["people"] == 5  # 5 skiers, all found

        def people_view():
            found = driver.find_elements(By.CSS_SELECTOR, ".bpnet-explorer img.bpnet-people-view")
            src = found[0].get_attribute("src") if found else ""
            return src if src and src.startswith(("blob:", "data:")) else None

        before = wait_for("the explorer's picture", people_view, 60)
        explorer = driver.find_element(By.CSS_SELECTOR, ".bpnet-explorer")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", explorer)
        table = driver.find_element(By.CSS_SELECTOR, ".bpnet-people-table")
        assert table.text.count("\n") >= 5, table.text  # header + 5 people
        timing = driver.find_element(By.CSS_SELECTOR, ".bpnet-timing")
        passes = forward_passes(timing.text)

        set_slider(driver, "bpnet-heatmap-threshold", "0.99")
        after = wait_for("the picture to re-render", lambda: (lambda s: s if s and s != before else None)(
            people_view()), 60)  # fmt: skip
        wait_for("the table to empty", lambda: "No people" in table.text, 30)
        assert after != before
        assert forward_passes(timing.text) == passes, "a decoder control must not run the network: " + timing.text

        set_slider(driver, "bpnet-heatmap-threshold", "0.1")  # back, for a screenshot with people in it
        wait_for("the picture to re-render again", lambda: (lambda s: s if s and s != after else None)(
            people_view()), 60)  # fmt: skip
        wait_for("the table to fill again", lambda: "No people" not in table.text, 30)
        time.sleep(1.0)  # let the browser paint the new image
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", explorer)
        shot = tmp_path / "explorer.png"
        assert explorer.screenshot(str(shot)) and shot.stat().st_size > 10_000
        shutil.copy(shot, ARTEFACTS / "explorer.png")
        driver.save_screenshot(str(tmp_path / "jupyterlab.png"))
    except BaseException:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        shutil.copy(tmp_path / "failure.png", ARTEFACTS / "failure.png")
        raise
