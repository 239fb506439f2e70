"""Knowledge distillation for ``bpnet train``: a teacher network's maps as (part of) the student's target."""

from __future__ import annotations

import logging
from pathlib import Path

from bpnet_core.config import as_train_spec, training_contract
from bpnet_core.data.pipeline import loader_from_spec, make_dataset
from bpnet_core.errors import BpnetError
from bpnet_core.meta import InputContract, read_meta, scale_offset
from bpnet_core.runners import load_runner
from bpnet_core.skeleton import PoseConfig
from bpnet_core.viz.draw import grid, overlay_map, overlay_pafs, to_rgb

log = logging.getLogger(__name__)


def student_contract(student) -> InputContract:
    """The student's input contract: an :class:`InputContract`, or (older callers) a :class:`Normalization` of an
    RGB student."""
    if isinstance(student, InputContract):
        return student
    return InputContract("RGB", student)


class Teacher:
    """A teacher network behind one call: :meth:`maps` turns the student's normalised batch (a tensor, inside the
    training step) into the teacher's last-stage ``(heatmaps, pafs)``.

    A ``.keras`` teacher runs inside the TensorFlow step; any other bpnet model (``.onnx``, OpenVINO ``.xml``) runs
    through its runner (:func:`bpnet_core.runners.load_runner`) in a ``tf.numpy_function``. Either way the batch is
    first mapped from the student's input contract (``student``: its :class:`InputContract`, colour order and
    normalisation, as :func:`bpnet_core.config.training_contract` decides; a bare :class:`Normalization` means an RGB
    student) to the teacher's: ``pixel = (x + offset) · scale``, the teacher's colour order, then the teacher's
    normalisation, so the teacher sees the same augmented image as the student.
    """

    def __init__(self, path: Path, meta, student, model=None, runner=None):
        import numpy as np

        self.path, self.meta, self.model, self.runner = path, meta, model, runner
        self.student = student_contract(student)
        s_scale, s_off = (np.asarray(v, np.float32) for v in scale_offset(self.student.normalization))
        t_scale, t_off = (np.asarray(v, np.float32) for v in scale_offset(meta.normalization))
        # colour flip first (when the orders differ), then per teacher channel c (student channel c' after the flip):
        # teacher input = pixel / t_scale − t_off with pixel = (x + s_off) · s_scale
        self.flip = self.student.color.upper() != meta.color.upper()
        if self.flip:
            s_scale, s_off = s_scale[::-1], s_off[::-1]
        self.a = s_scale / t_scale
        self.b = s_off * s_scale / t_scale - t_off

    def _input(self, x):
        import tensorflow as tf

        if self.flip:
            x = x[..., ::-1]
        return x * tf.constant(self.a) + tf.constant(self.b)

    def maps(self, images, every_stage: bool = False):
        """The teacher's last-stage ``(heatmaps, pafs)``; ``every_stage`` (a ``.keras`` teacher only): lists of
        every stage's maps instead, first stage first."""
        import tensorflow as tf

        x = self._input(tf.cast(images, tf.float32))
        if self.model is not None:
            outs = self.model(x, training=False)
            n = len(outs) // 2
            if every_stage:
                return ([tf.stop_gradient(tf.cast(o, tf.float32)) for o in outs[:n]],
                        [tf.stop_gradient(tf.cast(o, tf.float32)) for o in outs[n:]])  # fmt: skip
            heat, paf = outs[n - 1], outs[-1]
        else:

            def run(batch):
                h, p = self.runner.predict(batch)
                return h.astype("float32"), p.astype("float32")

            heat, paf = tf.numpy_function(run, [x], [tf.float32, tf.float32], stateful=False)
            heat.set_shape([None, None, None, self.meta.pose.num_heatmap_channels])
            paf.set_shape([None, None, None, self.meta.pose.num_paf_channels])
        return tf.stop_gradient(tf.cast(heat, tf.float32)), tf.stop_gradient(tf.cast(paf, tf.float32))


def load_teacher(spec, pose, student=None) -> Teacher | None:
    """The teacher of ``spec.distillation`` checked against the student's contract, or ``None`` when off.

    ``student``: the student's input contract (default: the spec's :func:`~bpnet_core.config.training_contract`;
    a :class:`Normalization` means an RGB student). One-line :class:`BpnetError` when the file does not load, or its
    pose config or stride differs from the student's (both named).
    """
    from bpnet_core.model import load_bpnet_model

    dist = spec.distillation
    path = Path(dist.teacher_model) if dist.teacher_model else _pruned_from(spec)
    if path is None or dist.weight == 0.0:
        return None
    student = training_contract(spec) if student is None else student
    where = f"{spec.source}: distillation.teacher_model {path}"
    if not path.is_file():
        raise BpnetError(f"{where}: file not found")
    try:
        meta = read_meta(path)
    except BpnetError as exc:
        raise BpnetError(f"{where}: cannot be read as a bpnet model ({str(exc)[:200]})") from None
    except Exception as exc:  # noqa: BLE001 - a broken zip, JSON, ... all mean "not a loadable model"
        raise BpnetError(f"{where}: cannot be read as a bpnet model ({type(exc).__name__}: {str(exc)[:160]})") from None
    same_pose = list(meta.pose.joint_names) == list(pose.joint_names) and [tuple(x) for x in meta.pose.limbs] == [
        tuple(x) for x in pose.limbs
    ]
    if not same_pose:
        raise BpnetError(
            f"{where}: the teacher's pose config {meta.pose.name} ({meta.pose.num_joints} joints, {meta.pose.num_limbs}"
            f" limbs) differs from the student's {pose.name} ({pose.num_joints} joints, {pose.num_limbs} limbs)"
        )
    strides = {meta.heatmaps().stride, meta.pafs().stride}
    if strides != {spec.stride}:
        raise BpnetError(f"{where}: the teacher's stride is {'/'.join(map(str, sorted(strides)))} but the student's "
                         f"is {spec.stride}")  # fmt: skip
    hw = (spec.dataloader.image_config.image_dims.height, spec.dataloader.image_config.image_dims.width)
    if meta.input_hw and tuple(meta.input_hw) != hw:
        raise BpnetError(f"{where}: the teacher takes only {meta.input_hw[0]}x{meta.input_hw[1]} input but the "
                         f"student trains at {hw[0]}x{hw[1]}")  # fmt: skip
    if dist.stages == "matching":
        want = _student_stages(spec)
        if path.suffix.lower() != ".keras" or want != meta.num_stages:
            raise BpnetError(f"{where}: distillation.stages: matching needs a .keras teacher with the student's "
                             f"{want} stages (the teacher: {path.suffix or 'no suffix'}, {meta.num_stages} stages); "
                             "use stages: all or last")  # fmt: skip
    if path.suffix.lower() == ".keras":
        try:
            model = load_bpnet_model(path, pose)
        except BpnetError as exc:
            raise BpnetError(f"{where}: {exc}") from None
        model.trainable = False
        teacher = Teacher(path, meta, student, model=model)
    else:
        try:
            runner = load_runner(path)
        except BpnetError as exc:
            raise BpnetError(f"{where}: {exc}") from None
        teacher = Teacher(path, runner.meta, student, runner=runner)
    log.info("distilling from %s (weight %.2f, stages %s, maps %s)", path, dist.weight, dist.stages, dist.maps)
    return teacher


def _student_stages(spec) -> int:
    """Stages of the model the spec trains: the ``load_graph`` file's, else ``model.stages``."""
    if spec.load_graph and spec.pretrained_weights:
        try:
            return read_meta(spec.pretrained_weights).num_stages
        except Exception:  # noqa: BLE001 - not a bpnet model file: model_from_spec reports it
            pass
    return int(spec.model.stages)


def _pruned_from(spec) -> Path | None:
    """``distillation.from_pruned``: the model ``pretrained_weights`` was pruned from, if it records one."""
    if not (spec.distillation.from_pruned and spec.pretrained_weights):
        return None
    try:
        source = read_meta(spec.pretrained_weights).provenance.get("pruned_from")
    except Exception:  # noqa: BLE001 - not a bpnet model file: model_from_spec reports it
        return None
    if not source:
        log.warning("distillation.from_pruned: %s does not record the model it was pruned from; training on labels "
                    "only", spec.pretrained_weights)  # fmt: skip
        return None
    if not Path(source).is_file():
        log.warning("distillation.from_pruned: %s (the model %s was pruned from) is gone; training on labels only",
                    source, spec.pretrained_weights)  # fmt: skip
        return None
    return Path(source)


def distillation_targets(teacher: Teacher, images, heatmaps, pafs, dist):
    """``(blended_heatmaps, blended_pafs, heatmaps, pafs)`` for one batch (inside the training step): the teacher's
    last-stage maps on the same augmented batch, blended with the labels as ``weight · teacher + (1 − weight) · label``
    for the branches ``dist.maps`` names (labels elsewhere). With ``dist.stages == "matching"`` the blended maps are
    lists, one per stage: stage ``t`` of the teacher for stage ``t`` of the student."""
    import tensorflow as tf

    matching = dist.stages == "matching"
    t_heat, t_paf = teacher.maps(images, every_stage=matching)
    w = float(dist.weight)
    heat = tf.cast(heatmaps, tf.float32)
    paf = tf.cast(pafs, tf.float32)

    def blend(t, label, branch):
        if dist.maps not in ("both", branch):
            return [label] * len(t) if matching else label
        return [w * x + (1.0 - w) * label for x in t] if matching else w * t + (1.0 - w) * label

    return blend(t_heat, heat, "heatmaps"), blend(t_paf, paf, "pafs"), heat, paf


def distillation_panel(spec, teacher_model, student_model, pose=None, overrides=(), index: int = 0, split="train"):
    """One RGB picture of what distillation trains on, for one augmented training sample: input | label heatmaps |
    teacher heatmaps | student heatmaps | label PAFs | teacher PAFs | student PAFs (last stage of each network).

    ``spec`` is a train spec (file or loaded) with ``overrides``; ``teacher_model``/``student_model`` are ``.keras``
    files (e.g. the unpruned and the pruned model). The student's input follows the spec's training contract
    (:func:`~bpnet_core.config.training_contract`); the teacher gets the batch renormalised to its own contract.
    """
    import numpy as np

    from bpnet_core.model import load_bpnet_model

    spec = as_train_spec(spec, overrides)
    pose = pose or PoseConfig.from_json(spec.dataloader.pose_config.pose_config_path)
    distillation = spec.distillation.model_copy(update={"teacher_model": str(teacher_model)})
    spec = spec.model_copy(update={"distillation": distillation})
    contract = training_contract(spec)
    teacher = load_teacher(spec, pose, contract)
    student = load_bpnet_model(student_model, pose)
    loader = loader_from_spec(spec, pose, split, contract=contract)
    images, labels = next(iter(make_dataset(loader, index + 1, epoch=0)))
    x = np.asarray(images)[index : index + 1]
    t_heat, t_paf = (np.asarray(m[0]) for m in teacher.maps(x))
    s_out = student(x, training=False)
    n_s = len(s_out) // 2
    bgr = contract.denormalize(x[0])
    heat = [np.asarray(labels["heatmaps"])[index], t_heat, np.asarray(s_out[n_s - 1][0])]
    paf = [np.asarray(labels["pafs"])[index], t_paf, np.asarray(s_out[-1][0])]
    tiles = [bgr] + [overlay_map(bgr, np.clip(np.max(h[:, :, :-1], axis=2), 0, 1)) for h in heat]
    tiles += [overlay_pafs(bgr, np.clip(p, -1, 1)) for p in paf]
    titles = ["input", "heat: labels", "heat: teacher", "heat: student", "PAF: labels", "PAF: teacher", "PAF: student"]
    return to_rgb(grid(tiles, cols=7, titles=titles))
