"""The inference explorer, in-process: set control values, assert on the pictures' PNG bytes, the people table and
the forward-pass / decode counters (never on Output widgets). The network is a stand-in that returns label maps
rendered from the real COCO sample's annotations, wrapped to count its predict calls."""

import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from bpnet_core.errors import BpnetError  # noqa: E402
from bpnet_core.meta import bpnet_meta  # noqa: E402
from bpnet_core.runners import RenderedMapsSource  # noqa: E402
from bpnet_core.viz.explorer import DECODER_CONTROLS, NETWORK_CONTROLS, Explorer, build_explorer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "coco_sample"
SAMPLE_JSON = SAMPLE / "person_keypoints_val2017_sample.json"
FIVE_SKIERS = SAMPLE / "000000197388.jpg"  # 5 labelled people
ONE_PERSON = SAMPLE / "000000000139.jpg"


class CountingRunner:
    """Delegates to the rendered-maps source and records each call (batch shape, stage); optionally slow; claims
    ``num_stages`` stages (each returns the same rendered maps)."""

    needs_transforms = True

    def __init__(self, inner, delay_s: float = 0.0, num_stages: int = 1):
        self.inner, self.delay_s = inner, delay_s
        names = [f"heatmap_stage{t}" for t in range(1, num_stages + 1)] + [
            f"paf_stage{t}" for t in range(1, num_stages + 1)
        ]
        self.meta = bpnet_meta(inner.pose, num_stages, names)
        self.calls = []

    def predict_with_transforms(self, batch, transforms, stage=None):
        self.calls.append((batch.shape, stage))
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.inner.predict_with_transforms(batch, transforms, stage)


@pytest.fixture(scope="module")
def rendered(pose):
    return RenderedMapsSource(SAMPLE_JSON, SAMPLE, pose)


@pytest.fixture
def runner(rendered):
    return CountingRunner(rendered)


def make(runner, pose, images=(FIVE_SKIERS, ONE_PERSON), **kw):
    return Explorer({"rendered maps": runner}, list(images), pose, display_size=kw.pop("display_size", 200), **kw)


def test_import_does_not_load_ipywidgets():
    code = "import sys, bpnet_core.viz.explorer; print('ipywidgets' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_builds_and_shows_people(runner, pose):
    ex = make(runner, pose)
    assert ex.error is None
    assert len(runner.calls) == 1 and ex.forward_passes == 1 and ex.decodes == 1
    assert len(ex.people) == 5
    assert ex.image_view.value[:8] == b"\x89PNG\r\n\x1a\n" and ex.map_view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert ex.table.value.count("<tr>") == 1 + 5  # header + one row per person
    assert "network" in ex.timing.value and "decode" in ex.timing.value
    assert set(NETWORK_CONTROLS) | set(DECODER_CONTROLS) <= set(ex.controls)
    assert ex.widget.children  # a VBox to display


def test_decoder_controls_redecode_the_cached_maps(runner, pose):
    ex = make(runner, pose)
    picture, table, decodes = ex.image_view.value, ex.table.value, ex.decodes
    ex.controls["heatmap_threshold"].value = 0.99  # above every (smoothed) peak: no joint candidates
    assert ex.people == [] and "No people" in ex.table.value
    assert ex.image_view.value != picture and ex.table.value != table
    assert ex.decodes == decodes + 1
    ex.controls["heatmap_threshold"].value = 0.1
    assert len(ex.people) == 5 and ex.image_view.value == picture and ex.table.value == table  # deterministic
    ex.controls["min_parts"].value = 18
    assert ex.people == []
    ex.controls["min_parts"].value = 4
    parts = sum(p.num_parts for p in ex.people)
    ex.controls["paf_threshold"].value = 0.99  # only samples on a (rendered, unit-length) PAF's core still count
    assert sum(p.num_parts for p in ex.people) < parts
    ex.controls["paf_threshold"].value = 0.05
    ex.controls["upsampling_factor"].value = 4
    ex.controls["min_person_score"].value = 0.5
    assert len(ex.people) == 5
    assert len(runner.calls) == 1 and ex.forward_passes == 1, "decoder controls must not run the network"
    assert ex.decodes == decodes + 8


def test_network_controls_rerun_the_network_once(runner, pose):
    ex = make(runner, pose)
    ex.controls["input_size"].value = 192
    assert len(runner.calls) == 2 and runner.calls[-1][0][1] == 192  # shorter side → input height
    ex.controls["input_size"].value = 192  # unchanged: nothing to do
    ex.refresh()  # same network settings: the cached maps are reused
    assert len(runner.calls) == 2
    picture = ex.image_view.value
    ex.set_image(ONE_PERSON)
    assert len(runner.calls) == 3 and len(ex.people) == 1 and ex.image_view.value != picture
    ex.controls["aspect_mode"].value = "pad_image_input"
    assert len(runner.calls) == 4 and runner.calls[-1][0][1:3] == (192, 192)
    ex.controls["scales"].value = "0.5, 1"  # multi-scale is off: scales do not matter
    assert len(runner.calls) == 4
    ex.controls["multi_scale"].value = True
    assert len(runner.calls) == 6 and ex.forward_passes == 5  # one update, one predict per scale
    assert len(ex.people) == 1 and ex.error is None
    ex.controls["flip_test"].value = True  # each scale once more, mirrored
    assert len(runner.calls) == 10 and ex.forward_passes == 6 and ex.state["flip_test"] is True
    assert len(ex.people) == 1 and "flip test" in ex.timing.value


def test_model_and_stage(rendered, pose):
    a, b = CountingRunner(rendered), CountingRunner(rendered, num_stages=3)
    ex = Explorer({"a": a, "b": b}, [FIVE_SKIERS], pose, display_size=160)
    assert [v for _, v in ex.controls["stage"].options] == [0]
    ex.controls["model"].value = "b"
    assert (len(a.calls), len(b.calls)) == (1, 1)
    assert [v for _, v in ex.controls["stage"].options] == [0, 1, 2, 3] and b.calls[-1][1] is None
    ex.controls["stage"].value = 2
    assert len(b.calls) == 2 and b.calls[-1][1] == 2 and ex.state["stage"] == 2
    ex.controls["model"].value = "a"  # back to a one-stage model: stage resets to "last"
    assert ex.controls["stage"].value == 0 and len(a.calls) == 2 and len(b.calls) == 2


def test_view_controls_only_redraw_the_map(runner, pose):
    ex = make(runner, pose)
    people, forward, decodes = ex.image_view.value, ex.forward_passes, ex.decodes
    seen = {ex.map_view.value}
    for name, value in [("joint", 0), ("joint", -1), ("layer", "PAF colour"), ("limb", 3), ("layer", "PAF arrows"),
                        ("layer", "candidates"), ("limb", -1)]:  # fmt: skip
        ex.controls[name].value = value
        assert ex.map_view.value not in seen, f"{name}={value} did not change the map view"
        seen.add(ex.map_view.value)
    assert ex.image_view.value == people and (ex.forward_passes, ex.decodes) == (forward, decodes)


def test_candidates_view_follows_the_decoder(runner, pose):
    ex = make(runner, pose)
    ex.controls["layer"].value, ex.controls["limb"].value = "candidates", 0
    dbg = ex.debug.limbs[0]
    assert len(dbg.accepted()) == sum(p.peak_ids[pose.limbs[0][0]] >= 0 and p.peak_ids[pose.limbs[0][1]] >= 0
                                      for p in ex.people)  # fmt: skip
    before, peaks, accepted = ex.map_view.value, len(ex.debug.peaks), len(dbg.accepted())
    ex.controls["heatmap_threshold"].value = 0.99  # only the strongest candidates are left
    assert ex.map_view.value != before and len(ex.debug.peaks) < peaks
    assert len(ex.debug.limbs[0].accepted()) <= accepted


def test_geometry_people_and_maps_line_up_with_the_image(runner, pose):
    """Decoded keypoints are in original pixels; a joint's heatmap, taken to display size, peaks at the joint."""
    ex = make(runner, pose, images=[ONE_PERSON], display_size=320)
    truth = runner.inner.people[str(ONE_PERSON.resolve())][0]
    kp = ex.keypoints[0]
    both = (kp[:, 2] > 0) & (truth[:, 2] > 0)
    assert both.sum() >= 10 and np.abs(kp[both, :2] - truth[both, :2]).max() < 6.0
    f = 320 / cv2.imread(str(ONE_PERSON)).shape[1]
    j = pose.joint_names.index("nose")
    disp = ex.map_to_display(ex.result.heatmaps[:, :, j])
    y, x = np.unravel_index(np.argmax(disp), disp.shape)
    assert np.hypot(x - truth[j, 0] * f, y - truth[j, 1] * f) < 4.0


def test_hold_batches_changes_into_one_update(runner, pose):
    ex = make(runner, pose)
    with ex.hold():
        ex.controls["input_size"].value = 160
        ex.set_image(ONE_PERSON)
        ex.controls["heatmap_threshold"].value = 0.2
    assert len(runner.calls) == 2 and ex.forward_passes == 2 and ex.decodes == 2 and len(ex.people) == 1


def test_upload_adds_and_shows_the_image(runner, pose, tmp_path):
    ex = make(runner, pose, upload_dir=tmp_path / "uploads")
    data = cv2.imencode(".png", cv2.imread(str(ONE_PERSON)))[1].tobytes()
    upload = {
        "name": "my photo.png",
        "type": "image/png",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(timezone.utc),
    }
    ex.controls["upload"].value = (upload,)
    saved = tmp_path / "uploads" / "my_photo.png"
    assert saved.is_file() and ex.controls["image"].value == str(saved) and ex.error is None
    assert len(runner.calls) == 2 and ex.people == []  # the stand-in network knows no labels for an upload
    with pytest.raises(BpnetError, match="cannot decode"):
        ex.add_image_bytes("broken.jpg", b"not an image")
    broken = {
        "name": "broken.jpg",
        "type": "image/jpeg",
        "size": 12,
        "content": memoryview(b"not an image"),
        "last_modified": datetime.now(timezone.utc),
    }
    ex.controls["upload"].value = (broken,)
    assert ex.error and "broken.jpg" in ex.status.value and not (tmp_path / "uploads" / "broken.jpg").exists()
    assert ex.controls["image"].value == str(saved) and ex.controls["upload"].value == ()


def test_bad_scales_are_reported_not_raised(runner, pose):
    ex = make(runner, pose)
    with ex.hold():
        ex.controls["multi_scale"].value = True
        ex.controls["scales"].value = "one, two"
    assert ex.error and "scales" in ex.status.value
    ex.controls["scales"].value = "1, 1.5"
    assert ex.error is None and ex.status.value == "" and ex.state["scales"] == [1.0, 1.5]


def test_unreadable_image_is_reported_and_the_explorer_recovers(runner, pose, tmp_path):
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(FIVE_SKIERS.read_bytes()[:5000])
    ex = make(runner, pose, images=[bad, ONE_PERSON])
    assert ex.error and "truncated" in ex.status.value and ex.result is None and ex.people == []
    ex.controls["layer"].value = "PAF colour"  # still no maps: the same error, no exception
    assert ex.error and ex.result is None
    ex.set_image(1)
    assert ex.error is None and len(ex.people) == 1 and ex.status.value == ""


def test_infer_spec_sets_the_starting_values(runner, pose):
    ex = make(runner, pose, infer_spec=ROOT / "specs" / "infer_spec_demo.yaml")
    assert ex.controls["input_size"].value == 128 and runner.calls[0][0][1] == 128
    assert ex.params.heatmap_threshold == pytest.approx(0.1) and ex.params.smooth_sigma == pytest.approx(3.0)


def test_timing_report_separates_decoder_and_full_updates(rendered, pose):
    slow = CountingRunner(rendered, delay_s=0.05)
    ex = make(slow, pose)
    report = ex.timing_report(repeats=2)
    assert report["repeats"] == 2 and len(slow.calls) == 3
    assert report["decoder_update_ms"] > 0 and report["full_update_ms"] >= report["decoder_update_ms"] + 40


def test_build_explorer_without_trained_model(tmp_path, pose):
    ex = build_explorer(tmp_path, pose, image_sets=["coco_sample"], display_size=160)
    assert list(ex.runners) == ["rendered maps"] and len(ex.controls["image"].options) == 36
    assert ex.people and (tmp_path / "06_explore").is_dir()
    with pytest.raises(BpnetError, match="00_setup"):
        build_explorer(tmp_path, pose, image_sets=["val"])
    with pytest.raises(BpnetError, match="image_sets"):
        build_explorer(tmp_path, pose, image_sets=["nope"])
