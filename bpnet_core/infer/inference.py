"""``bpnet inference``: images → network → decoder → people in original image pixels (TAO semantics, facts §1.7–1.8).

Pre-processing (``keep_aspect_ratio_mode``):

* ``adjust_network_input``: the image is resized so that its shorter side is ``input_shape[0]`` (aspect ratio kept;
  the longer side capped at 4 × ``input_shape[0]`` for extreme shapes), then padded bottom-right to a multiple of the
  stride. Used by Keras and dynamic-shape ONNX models.
* ``pad_image_input``: the image is fitted into the fixed ``input_shape`` (H, W) (aspect ratio kept) and padded
  bottom-right — TensorRT engines and fixed-shape ONNX files force this mode, as TAO does.

``multi_scale_inference``: for each of ``scales`` the network runs on the image resized by that scale; each scale's
maps are cropped to the image content, resized to the largest scale's map size and averaged with equal weights.

``flip_test`` (bpnet extension, as in OpenPose's and HRNet's evaluations): at every scale the network also runs on the
left-right mirrored input; its maps are mirrored back (left/right joints and limbs swapped, PAF x negated, see
:meth:`PoseConfig.flip_maps`) and averaged with the direct ones. Twice the network time, better joint localisation.

Decoding happens on the (averaged) maps with the spec's decoder parameters; keypoints are mapped back to the original
image with the inverse of the pre-processing transform.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.decode import DecodeParams, decode
from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
PAD_VALUE = 128  # grey: 0 after normalisation (x/256 − 0.5)
MAX_SIDE = 16384
MAX_ASPECT = 4  # adjust_network_input: the long side is at most 4 × input_shape[0]


class ChannelMismatch(BpnetError):
    """The network's output channels do not match the pose config."""


@dataclass
class Preprocessed:
    batch: np.ndarray  # (1, H, W, 3) normalised
    scale: float  # original pixels × scale = network-input pixels
    content_hw: tuple[int, int]  # network-input region covered by the image (rest is padding)

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.scale, 0, 0], [0, self.scale, 0]], np.float64)


@dataclass
class ImageResult:
    """What :func:`infer_image` returns for one image."""

    keypoints: np.ndarray  # (P, J, 3) x, y in original image pixels, confidence (0 = missing)
    scores: list[float]
    heatmaps: np.ndarray  # (h, w, J+1) maps that were decoded (after multi-scale averaging)
    pafs: np.ndarray
    input_hw: tuple[int, int]  # network input size of the reference scale
    scale: float  # original → network input
    timings_ms: dict = field(default_factory=dict)
    people: list = field(default_factory=list)  # the decoder's Person objects (network-input coordinates)


def round_to_stride(v: float, stride: int) -> int:
    return max(stride, int(np.ceil(v / stride)) * stride)


def preprocess(
    image_bgr: np.ndarray,
    input_shape: tuple[int, int],
    mode: str,
    stride: int,
    image_scale=(256.0, 256.0, 256.0),
    image_offset=(0.5, 0.5, 0.5),
    scale_factor: float = 1.0,
) -> Preprocessed:
    """Resize + pad one BGR image into a normalised network batch of one."""
    h, w = image_bgr.shape[:2]
    if h < 1 or w < 1:
        raise BpnetError(f"image of size {w}x{h} cannot be processed")
    th, tw = int(round(input_shape[0] * scale_factor)), int(round(input_shape[1] * scale_factor))
    if mode == "pad_image_input":
        th, tw = round_to_stride(th, stride), round_to_stride(tw, stride)
        s = min(th / h, tw / w)
        out_hw = (th, tw)
    elif mode in ("adjust_network_input", None, "None"):
        s = min(th / float(min(h, w)), MAX_ASPECT * th / float(max(h, w)))  # extreme aspect ratios: cap the long side
        out_hw = (round_to_stride(h * s, stride), round_to_stride(w * s, stride))
    else:
        raise BpnetError(f"keep_aspect_ratio_mode must be adjust_network_input or pad_image_input (got {mode!r})")
    if max(out_hw) > MAX_SIDE:
        raise BpnetError(f"network input {out_hw[1]}x{out_hw[0]} is too large (max side {MAX_SIDE})")
    nh, nw = max(1, min(out_hw[0], int(round(h * s)))), max(1, min(out_hw[1], int(round(w * s))))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=interp)
    canvas = np.full((out_hw[0], out_hw[1], 3), PAD_VALUE, np.uint8)
    canvas[:nh, :nw] = resized
    rgb = canvas[:, :, ::-1].astype(np.float32) / np.asarray(image_scale, np.float32) - np.asarray(image_offset, np.float32)
    return Preprocessed(batch=rgb[None], scale=s, content_hw=(nh, nw))


def _context(path, pre: Preprocessed) -> list[dict]:
    return [{"image_path": str(path) if path else "", "matrix": pre.matrix}]


def _predict(runner, pre: Preprocessed, stage, path, pose: PoseConfig, flip) -> tuple[np.ndarray, np.ndarray]:
    """The runner's (heatmaps, PAFs) for one pre-processed image; with ``flip`` = ``pose.flip_maps()`` averaged with
    those of the mirrored input. Only the columns the label cells cover are mirrored (cell centres stay aligned)."""
    heat, paf = runner.predict(pre.batch, stage=stage, context=_context(path, pre))
    heat, paf = np.asarray(heat[0], np.float32), np.asarray(paf[0], np.float32)
    if heat.shape[2] != pose.num_heatmap_channels or paf.shape[2] != pose.num_paf_channels:
        raise ChannelMismatch(
            f"model outputs {heat.shape[2]} heatmap / {paf.shape[2]} PAF channels but pose config "
            f"{pose.name} needs {pose.num_heatmap_channels} / {pose.num_paf_channels}"
        )
    if flip is None:
        return heat, paf
    heat_perm, paf_perm, paf_sign = flip
    w = heat.shape[1] * int(runner.stride)
    batch = pre.batch.copy()
    batch[:, :, :w] = pre.batch[:, :, :w][:, :, ::-1]
    mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    ctx = _context(path, pre)
    ctx[0]["matrix"] = (mirror @ np.vstack([pre.matrix, [0, 0, 1]]))[:2]
    heat_m, paf_m = runner.predict(batch, stage=stage, context=ctx)
    heat_m = np.asarray(heat_m[0], np.float32)[:, ::-1]
    paf_m = np.asarray(paf_m[0], np.float32)[:, ::-1]
    return (heat + heat_m[..., heat_perm]) / 2, (paf + paf_m[..., paf_perm] * paf_sign) / 2


def infer_image(
    runner,
    image_bgr: np.ndarray,
    pose: PoseConfig,
    input_shape: tuple[int, int] = (368, 368),
    keep_aspect_ratio_mode: str = "adjust_network_input",
    params: DecodeParams | None = None,
    output_stage_to_use: int | None = None,
    scales: list[float] | None = None,
    image_path: str | Path | None = None,
    normalization=((256.0, 256.0, 256.0), (0.5, 0.5, 0.5)),
    flip_test: bool = False,
) -> ImageResult:
    """Run the network (single or multi-scale, optionally with the mirrored image too) and the decoder on one image;
    keypoints in original pixels."""
    params = params or DecodeParams()
    flip = pose.flip_maps() if flip_test else None
    stride = int(runner.stride)
    mode = keep_aspect_ratio_mode
    if runner.fixed_input_shape is not None:
        mode, input_shape, scales = "pad_image_input", runner.fixed_input_shape, None
    scales = sorted(scales) if scales else [1.0]
    t0 = time.perf_counter()
    ref = None
    acc_h = acc_p = None
    for sf in scales[::-1]:  # largest scale first: it defines the common map size
        pre = preprocess(image_bgr, input_shape, mode, stride, *normalization, scale_factor=sf)
        heat, paf = _predict(runner, pre, output_stage_to_use, image_path, pose, flip)
        if ref is None:
            ref = pre
            acc_h, acc_p = heat.copy(), paf.copy()
            ref_cells = (int(np.ceil(pre.content_hw[0] / stride)), int(np.ceil(pre.content_hw[1] / stride)))
            continue
        ch, cw = int(np.ceil(pre.content_hw[0] / stride)), int(np.ceil(pre.content_hw[1] / stride))
        size = (ref_cells[1], ref_cells[0])
        acc_h[: ref_cells[0], : ref_cells[1]] += cv2.resize(heat[:ch, :cw], size, interpolation=cv2.INTER_CUBIC)
        acc_p[: ref_cells[0], : ref_cells[1]] += cv2.resize(paf[:ch, :cw], size, interpolation=cv2.INTER_CUBIC)
    if len(scales) > 1:
        acc_h /= len(scales)
        acc_p /= len(scales)
    t1 = time.perf_counter()
    people = decode(acc_h, acc_p, pose, params, stride=stride)
    t2 = time.perf_counter()
    return ImageResult(
        keypoints=people_to_image(people, ref.scale, image_bgr.shape[:2], pose),
        scores=[float(p.score) for p in people],
        heatmaps=acc_h,
        pafs=acc_p,
        input_hw=tuple(ref.batch.shape[1:3]),
        scale=ref.scale,
        timings_ms={"network": (t1 - t0) * 1000, "decode": (t2 - t1) * 1000},
        people=people,
    )


def people_to_image(people: list, scale: float, image_hw: tuple[int, int], pose: PoseConfig) -> np.ndarray:
    """Decoded people (network-input pixels) → keypoints (P, J, 3) in original image pixels."""
    kps = np.zeros((len(people), pose.num_joints, 3), np.float32)
    for n, person in enumerate(people):
        kp = np.asarray(person.keypoints, np.float32)
        present = kp[:, 2] > 0
        kps[n, present, :2] = kp[present, :2] / scale
        kps[n, present, 2] = kp[present, 2]
        kps[n, :, 0] = np.clip(kps[n, :, 0], 0, image_hw[1] - 1) * present
        kps[n, :, 1] = np.clip(kps[n, :, 1], 0, image_hw[0] - 1) * present
    return kps


def list_inputs(input_type: str, input_path: str | Path, image_root_path: str | Path | None = None) -> list[dict]:
    """The images to process: ``[{"path": Path, "image_id": int | None}]`` for image, dir or json (COCO) inputs."""
    from bpnet_core.fileio import read_json, safe_join

    input_path = Path(input_path)
    if input_type == "image":
        if not input_path.is_file():
            raise BpnetError(f"{input_path}: input image not found")
        return [{"path": input_path, "image_id": None}]
    if input_type == "dir":
        if not input_path.is_dir():
            raise BpnetError(f"{input_path}: input directory not found")
        files = sorted(p for p in input_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise BpnetError(f"{input_path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the directory")
        return [{"path": p, "image_id": None} for p in files]
    if input_type == "json":
        data = read_json(input_path, "annotation file")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise BpnetError(f"{input_path}: expected a COCO annotation file with an 'images' list")
        root = Path(image_root_path) if image_root_path else input_path.parent
        return [{"path": safe_join(root, im["file_name"]), "image_id": im["id"]} for im in data["images"]]
    raise BpnetError(f"--input_type must be image, dir or json (got {input_type!r})")


def resolve_pose(spec, runner=None) -> PoseConfig:
    """The pose config for inference: the runner's own, else the train spec's ``pose_config_path``, else TAO's 18."""
    from bpnet_core.skeleton import default_pose_config_path

    if runner is not None and getattr(runner, "pose", None) is not None:
        return runner.pose
    train_spec = getattr(spec, "train_spec", None)
    if train_spec:
        from bpnet_core.config import load_train_spec, resolve_path

        path = resolve_path(getattr(spec, "source", None), train_spec)
        if Path(path).is_file():
            tspec = load_train_spec(path)
            return PoseConfig.from_json(resolve_path(tspec.source, tspec.dataloader.pose_config.pose_config_path))
    return PoseConfig.from_json(default_pose_config_path())


def _openpose_json(result: ImageResult) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [float(v) for v in kp.reshape(-1)]}
                                       for kp in result.keypoints]}  # fmt: skip


def run_inference(
    spec,
    model,
    input_type: str,
    input_path: str | Path,
    results_dir: str | Path,
    image_root_path: str | Path | None = None,
    dump_visualizations: bool = False,
    dump_openpose_json: bool = False,
    pose: PoseConfig | None = None,
    dataset_keypoints: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Run inference over images; write ``detections.json`` (TAO layout), ``detections_coco_format.json``
    (17 COCO keypoints, when ``dataset_keypoints`` or the default COCO names apply), optional per-image OpenPose JSON
    and annotated images. ``model`` is a model path or a runner. Returns a summary (also ``inference_summary.json``)."""
    from tqdm.auto import tqdm

    from bpnet_core.data.coco import COCO_KEYPOINTS, pose_to_dataset
    from bpnet_core.fileio import read_image, write_bytes_atomic, write_json_atomic
    from bpnet_core.infer.runners import load_runner
    from bpnet_core.viz.draw import draw_people, to_png

    items = list_inputs(input_type, input_path, image_root_path)
    results_dir = Path(results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BpnetError(f"{results_dir}: cannot create results directory ({exc.strerror})") from None
    runner = load_runner(model) if isinstance(model, (str, Path)) else model
    pose = pose or resolve_pose(spec, runner)
    params = spec.decode_params()
    scales = list(spec.scales) if spec.multi_scale_inference else None
    names = dataset_keypoints or COCO_KEYPOINTS
    viz_dir = results_dir / "images_annotated"
    op_dir = results_dir / "openpose_json"
    for d, on in ((viz_dir, dump_visualizations), (op_dir, dump_openpose_json)):
        if on:
            d.mkdir(exist_ok=True)

    images_out, coco_results, skipped, timings = [], [], [], []
    for idx, item in enumerate(tqdm(items, desc="inference", unit="img", disable=not progress)):
        try:
            image = read_image(item["path"])
        except BpnetError as exc:
            if input_type == "image":  # the one image asked for is unreadable: an error, not a skip
                raise
            log.warning("skipped %s", exc)
            skipped.append({"file": str(item["path"]), "reason": str(exc)})
            continue
        try:
            res = infer_image(runner, image, pose, tuple(spec.input_shape), spec.keep_aspect_ratio_mode, params,
                              spec.output_stage_to_use, scales, image_path=item["path"],
                              flip_test=spec.flip_test)  # fmt: skip
        except ChannelMismatch as exc:
            raise BpnetError(f"{model if isinstance(model, (str, Path)) else type(runner).__name__}: {exc}") from None
        timings.append(res.timings_ms)
        entry = {
            "full_image_path": str(item["path"]),
            "keypoints": [[[float(x), float(y)] for x, y, _ in kp] for kp in res.keypoints],
            "scores": res.scores,
        }
        if item["image_id"] is not None:
            entry["image_id"] = item["image_id"]
            ds_kps = pose_to_dataset(res.keypoints, names, pose)
            for kp, score in zip(ds_kps, res.scores):
                flat = []
                for x, y, c in kp:
                    flat += [float(x), float(y), 1 if c > 0 else 0]
                coco_results.append({"image_id": item["image_id"], "category_id": 1, "keypoints": flat,
                                     "score": float(score)})  # fmt: skip
        if dump_visualizations:
            entry["viz_id"] = idx
            write_bytes_atomic(viz_dir / f"{idx}.png", to_png(draw_people(image, res.keypoints, pose, res.scores)))
        if dump_openpose_json:
            write_json_atomic(op_dir / f"{Path(item['path']).stem}_keypoints.json", _openpose_json(res))
        images_out.append(entry)

    detections = {
        "categories": [{"supercategory": "person", "id": 1, "name": "person", **pose.to_json_dict()}],
        "inference_spec": spec.to_dict() if hasattr(spec, "to_dict") else {},
        "images": images_out,
    }
    write_json_atomic(results_dir / "detections.json", detections)
    if any(it["image_id"] is not None for it in items):
        write_json_atomic(results_dir / "detections_coco_format.json", coco_results, indent=None)
    net = [t["network"] for t in timings]
    dec = [t["decode"] for t in timings]
    summary = {
        "images": len(items),
        "processed": len(images_out),
        "people": int(sum(len(e["scores"]) for e in images_out)),
        "skipped": skipped,
        "network_ms_median": float(np.median(net)) if net else None,
        "decode_ms_median": float(np.median(dec)) if dec else None,
        "results_dir": str(results_dir),
    }
    write_json_atomic(results_dir / "inference_summary.json", summary)
    return summary
