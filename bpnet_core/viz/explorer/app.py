"""The :class:`Explorer` itself: its widgets (controls, layout, upload), their wiring to the three refresh levels,
and the cached forward pass and decoder run behind the views (see :mod:`bpnet_core.viz.explorer`)."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bpnet_core.config import infer_spec_from_model, load_infer_spec
from bpnet_core.config.schema import InferSpec
from bpnet_core.decode import DecodeParams, decode_debug
from bpnet_core.errors import BpnetError
from bpnet_core.fileio import IMAGE_SUFFIXES, read_image, write_bytes_atomic
from bpnet_core.infer.predictor import ImageResult, Predictor, people_to_photo
from bpnet_core.meta import RESIZE_MODES
from bpnet_core.skeleton import PoseConfig
from bpnet_core.viz.draw import to_png
from bpnet_core.viz.explorer.views import ALL_JOINTS, ALL_LIMBS, BACKGROUND, ExplorerViews

log = logging.getLogger(__name__)

#: controls whose change needs a new forward pass
NETWORK_CONTROLS = ("image", "model", "input_size", "aspect_mode", "stage", "multi_scale", "scales", "flip_test")
#: controls whose change only re-decodes the cached maps
DECODER_CONTROLS = ("heatmap_threshold", "paf_threshold", "min_parts", "min_person_score", "upsampling_factor")
#: controls whose change only redraws the map view
VIEW_CONTROLS = ("layer", "joint", "limb")

VIEW, DECODE, NETWORK = 0, 1, 2  # refresh levels: each includes the ones below
LAYERS = ("heatmap", "PAF colour", "PAF arrows", "candidates")
ASPECT_MODES = RESIZE_MODES


def _parse_scales(text: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise BpnetError(f"scales must be numbers separated by commas (got {text!r})") from None
    if not values or any(not 0.1 <= v <= 4.0 for v in values):
        raise BpnetError(f"scales must be between 0.1 and 4 (got {text!r})")
    return sorted(set(values))


class Explorer(ExplorerViews):
    """The explorer: ``widget`` (display it), ``controls`` (by name), the views and counters.

    ``runners``: name → runner (see :mod:`bpnet_core.runners`). ``images``: a list of paths (labelled
    ``folder/file``) or a dict label → path. ``infer_spec``: an :class:`~bpnet_core.config.schema.InferSpec` or its
    file, for the controls' starting values (input size, aspect mode, stage, thresholds, scales and the decoder
    block's other constants) with bpnet's own models; a model imported with a card (a real network) starts at its
    card's recommended settings instead.
    ``upload_dir``: where uploaded images are written (a temporary folder by default).
    """

    def __init__(
        self,
        runners: dict,
        images: list | dict,
        pose: PoseConfig,
        infer_spec=None,
        upload_dir: str | Path | None = None,
        display_size: int = 400,
        start_image: int = 0,
    ):
        import ipywidgets as W

        if not runners:
            raise BpnetError("Explorer needs at least one runner (name → runner)")
        if isinstance(infer_spec, (str, Path)):
            infer_spec = load_infer_spec(infer_spec)
        self.runners = dict(runners)
        self.pose = pose
        self.spec = infer_spec
        self.display_size = int(display_size)
        self._upload_dir = Path(upload_dir) if upload_dir else None
        if isinstance(images, dict):
            options = [(str(label), str(path)) for label, path in images.items()]
        else:
            options = [(f"{Path(p).parent.name}/{Path(p).name}", str(p)) for p in images]
        if not options:
            raise BpnetError("Explorer needs at least one image")

        self.forward_passes = 0  # forward passes (infer_image calls) so far
        self.decodes = 0  # decoder runs so far
        self.draws = 0
        self.error: str | None = None
        self.result = None  # ImageResult of the cached forward pass
        self.debug = None  # DecodeDebug of the current decoder settings
        self.timings_ms: dict = {}
        self._net_key = None
        self._image_cache: tuple[str, np.ndarray, np.ndarray] | None = None
        self._hold = 0
        self._pending = -1
        self._silent = False

        self._base_params = infer_spec.decode_params() if infer_spec is not None else DecodeParams()
        self.controls = self._make_controls(W, options, min(int(start_image), len(options) - 1))
        self._strides, self._box = (8, 8), (0, 0, 1, 1)  # of the cached forward pass (set by _forward)
        self._use_model_settings()
        self._update_stage_options((infer_spec.output_stage_to_use or 0) if infer_spec is not None else 0)
        self.image_view = W.Image(format="png")
        self.map_view = W.Image(format="png")
        self.table = W.HTML()
        self.timing = W.HTML()
        self.status = W.HTML()
        self.widget = self._layout(W)
        self.refresh(NETWORK)

    def _make_controls(self, W, options: list[tuple[str, str]], start: int) -> dict:
        """The control widgets by name, starting at the inference spec's values (or TAO's defaults)."""
        spec, base, pose = self.spec, self._base_params, self.pose
        size = int(spec.input_shape[0]) if spec is not None else 256
        mode = (spec.keep_aspect_ratio_mode if spec is not None else None) or "adjust_network_input"
        multi = bool(spec.multi_scale_inference) if spec is not None else False
        flip = bool(spec.flip_test) if spec is not None else False
        scales = ", ".join(f"{s:g}" for s in (spec.scales if spec is not None else [0.5, 1.0, 1.5]))
        style = {"description_width": "135px"}
        wide = W.Layout(width="385px")

        def slider(cls, desc, value, lo, hi, step, tip):
            return cls(value=value, min=lo, max=hi, step=step, description=desc, continuous_update=False,
                       style=style, layout=wide, tooltip=tip)  # fmt: skip

        def dropdown(desc, opts, value):
            return W.Dropdown(options=opts, value=value, description=desc, style=style, layout=wide)

        joints = [("all joints (max)", ALL_JOINTS)] + [(n, j) for j, n in enumerate(pose.joint_names)]
        limbs = [("all limbs", ALL_LIMBS)] + [(self._limb_name(k), k) for k in range(pose.num_limbs)]
        return {
            "image": dropdown("image", options, options[start][1]),
            "upload": W.FileUpload(accept="image/*", multiple=False, description="upload an image",
                                   layout=W.Layout(width="180px", margin="2px 0 2px 139px")),
            "model": dropdown("model", list(self.runners), next(iter(self.runners))),
            "input_size": slider(W.IntSlider, "input size (px)", size, 64, 768, 8,
                                 "network input height (adjust) or side (pad)"),
            "aspect_mode": dropdown("aspect mode", list(ASPECT_MODES), mode),
            "stage": dropdown("output stage", [("last", 0)], 0),
            "multi_scale": W.Checkbox(value=multi, description="multi-scale", style=style, indent=True),
            "scales": W.Text(value=scales, description="scales", continuous_update=False, style=style, layout=wide),
            "flip_test": W.Checkbox(value=flip, description="flip test (+ mirrored image)", style=style, indent=True),
            "heatmap_threshold": slider(W.FloatSlider, "heatmap threshold", base.heatmap_threshold, 0.0, 0.99, 0.01,
                                        "a joint candidate must exceed this heatmap value"),
            "paf_threshold": slider(W.FloatSlider, "PAF threshold", base.paf_threshold, 0.0, 0.99, 0.01,
                                    "a line-integral sample counts when PAF·direction exceeds this"),
            "min_parts": slider(W.IntSlider, "min parts", base.min_parts, 1, pose.num_joints, 1,
                                "drop people with fewer joints"),
            "min_person_score": slider(W.FloatSlider, "min person score", base.min_person_score, 0.0, 2.0, 0.05,
                                       "drop people whose summed score / parts is below this"),
            "upsampling_factor": slider(W.IntSlider, "upsampling factor", int(base.upsampling_factor), 1, 8, 1,
                                        "heatmaps are upsampled by this before peak finding"),
            "layer": dropdown("map view", list(LAYERS), "heatmap"),
            "joint": dropdown("joint", joints + [("background", BACKGROUND)], ALL_JOINTS),
            "limb": dropdown("limb", limbs, ALL_LIMBS),
        }  # fmt: skip

    def _layout(self, W):
        """Wire the controls to their update level, tag the widgets with CSS classes, and lay everything out."""
        c = self.controls
        for level, names in ((NETWORK, NETWORK_CONTROLS), (DECODE, DECODER_CONTROLS), (VIEW, VIEW_CONTROLS)):
            for name in names:
                c[name].observe(self._handler(level, name), names="value")
        c["upload"].observe(self._on_upload, names="value")
        for name, w in c.items():
            w.add_class("bpnet-" + name.replace("_", "-"))
        for w, cls in ((self.image_view, "bpnet-people-view"), (self.map_view, "bpnet-map-view"),
                       (self.table, "bpnet-people-table"), (self.timing, "bpnet-timing")):  # fmt: skip
            w.add_class(cls)

        def head(text):
            return W.HTML(f"<b>{text}</b>")

        panel = W.VBox([head("Image and network"), c["image"], c["upload"], c["model"], c["input_size"],
                        c["aspect_mode"], c["stage"], c["multi_scale"], c["scales"], c["flip_test"],
                        head("Decoder"),
                        c["heatmap_threshold"], c["paf_threshold"], c["min_parts"], c["min_person_score"],
                        c["upsampling_factor"], head("Map view"), c["layer"], c["joint"], c["limb"]],
                       layout=W.Layout(width="395px", flex="0 0 auto"))  # fmt: skip
        views = W.VBox([W.HBox([self.image_view, self.map_view]), self.timing, self.table, self.status])
        top = W.VBox([W.HTML("<h3>BodyPoseNet inference explorer</h3>"), W.HBox([panel, views])])
        top.add_class("bpnet-explorer")
        return top

    # ------------------------------------------------------------------------------------------------ public API
    @property
    def people(self) -> list:
        """The decoded people (:class:`~bpnet_core.decode.Person`, network-input pixels), best first."""
        return list(self.debug.people) if self.debug is not None else []

    @property
    def keypoints(self) -> np.ndarray:
        """The decoded people's keypoints (P, J, 3) in original image pixels."""
        if self.result is None:
            return np.zeros((0, self.pose.num_joints, 3), np.float32)
        return people_to_photo(self.people, self.result.matrix, self._image()[1].shape[:2], self.pose.num_joints)

    @property
    def params(self) -> DecodeParams:
        """The decoder constants the controls ask for (the spec's others unchanged)."""
        c = self.controls
        return dataclasses.replace(
            self._base_params,
            heatmap_threshold=float(c["heatmap_threshold"].value),
            paf_threshold=float(c["paf_threshold"].value),
            min_parts=int(c["min_parts"].value),
            min_person_score=float(c["min_person_score"].value),
            upsampling_factor=int(c["upsampling_factor"].value),
        )

    @property
    def state(self) -> dict:
        """Everything the views show, as plain values."""
        c = self.controls
        return {
            "image": c["image"].value,
            "model": c["model"].value,
            "input_size": int(c["input_size"].value),
            "aspect_mode": c["aspect_mode"].value,
            "stage": int(c["stage"].value) or None,
            "scales": (list(self._net_key[5]) or None) if self._net_key else None,  # of the cached forward pass
            "flip_test": bool(self._net_key[6]) if self._net_key else None,
            "params": dataclasses.asdict(self.params),
            "people": len(self.people),
            "scores": [round(float(p.score), 4) for p in self.people],
            "forward_passes": self.forward_passes,
            "decodes": self.decodes,
            "timings_ms": dict(self.timings_ms),
            "error": self.error,
        }

    def set_image(self, image: str | Path | int) -> None:
        """Show an image: an index into the image list, a label of it, or a path (added to the list if new)."""
        dd = self.controls["image"]
        opts = list(dd.options)
        if isinstance(image, (int, np.integer)):
            dd.value = opts[int(image)][1]
            return
        for label, path in opts:
            if image == label:
                dd.value = path
                return
        path = str(image)
        if not Path(path).is_file():
            raise BpnetError(f"{path}: image not found")
        if path not in [p for _, p in opts]:
            with self._quiet():
                dd.options = opts + [(f"{Path(path).parent.name}/{Path(path).name}", path)]
        dd.value = path

    def add_image_bytes(self, name: str, data: bytes) -> Path:
        """Write an uploaded image into the upload folder, add it to the list and show it."""
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="bpnet_explorer_uploads_"))
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(str(name)).name) or "upload.png"
        if Path(safe).suffix.lower() not in IMAGE_SUFFIXES:
            safe += ".png"
        self._upload_dir.mkdir(parents=True, exist_ok=True)
        path = write_bytes_atomic(self._upload_dir / safe, bytes(data))
        try:
            read_image(path)  # refuses a file that is not an image, with a one-line error
        except BpnetError:
            path.unlink(missing_ok=True)
            raise
        self.set_image(path)
        return path

    def refresh(self, level: int = NETWORK, force: bool = False) -> None:
        """Bring the views up to date with the controls: ``NETWORK`` (forward pass if its settings changed, or
        ``force``), ``DECODE`` (decode the cached maps) or ``VIEW`` (redraw the map view)."""
        if self._hold:
            self._pending = max(self._pending, level)
            return
        self.error = None
        try:
            if level >= NETWORK or self.result is None:  # (no maps yet: an earlier forward pass failed)
                self._forward(force)
            if level >= DECODE or self.debug is None:
                self._decode()
                level = max(level, DECODE)
            self._draw(level)
        except BpnetError as exc:
            self.error = str(exc)
            log.warning("explorer: %s", exc)
        self.status.value = (f"<span style='color:#b00020'>&#9888; {html.escape(self.error)}</span>"
                             if self.error else "")  # fmt: skip

    @contextlib.contextmanager
    def hold(self):
        """Change several controls and update once, on leaving the ``with`` block."""
        self._hold += 1
        try:
            yield self
        finally:
            self._hold -= 1
            if not self._hold and self._pending >= 0:
                level, self._pending = self._pending, -1
                self.refresh(level)

    def timing_report(self, repeats: int = 5) -> dict:
        """Median wall time (ms) of a decoder-only update (decode the cached maps + redraw) and of a full update
        (forward pass + decode + redraw) on the current image and settings. Adds ``repeats`` forward passes."""
        decoder, full = [], []
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            self.refresh(DECODE)
            t1 = time.perf_counter()
            self.refresh(NETWORK, force=True)
            t2 = time.perf_counter()
            decoder.append((t1 - t0) * 1000)
            full.append((t2 - t1) * 1000)
        return {
            "decoder_update_ms": round(statistics.median(decoder), 2),
            "full_update_ms": round(statistics.median(full), 2),
            "repeats": len(full),
            "network_ms": round(self.timings_ms.get("network", 0.0), 2),
            "decode_ms": round(self.timings_ms.get("decode", 0.0), 2),
            "draw_ms": round(self.timings_ms.get("draw", 0.0), 2),
        }

    def snapshot(self) -> np.ndarray:
        """The people view and the map view side by side (BGR), for a static figure or a file."""
        pics = [cv2.imdecode(np.frombuffer(bytes(w.value), np.uint8), cv2.IMREAD_COLOR)
                for w in (self.image_view, self.map_view)]  # fmt: skip
        gap = np.full((pics[0].shape[0], 6, 3), 255, np.uint8)
        return np.hstack([pics[0], gap, pics[1]])

    # ------------------------------------------------------------------------------------------------ internals
    def _limb_name(self, k: int) -> str:
        a, b = self.pose.limbs[k]
        return f"{k}: {self.pose.joint_names[a]} → {self.pose.joint_names[b]}"

    def _handler(self, level: int, name: str):
        def on_change(change):
            if self._silent:
                return
            if name == "model":
                self._update_stage_options(0)
                self._use_model_settings()
            self.refresh(level)

        return on_change

    @contextlib.contextmanager
    def _quiet(self):
        old, self._silent = self._silent, True
        try:
            yield
        finally:
            self._silent = old

    def _update_stage_options(self, stage: int) -> None:
        stages = self.runners[self.controls["model"].value].meta.available_stages
        dd = self.controls["stage"]
        with self._quiet():
            dd.options = [("last", 0)] + ([(str(s), s) for s in stages] if len(stages) > 1 else [])
            dd.value = stage if stage in stages else 0

    def _model_spec(self, name: str):
        """The inference spec a model starts from: its card's recommended settings for an imported network, else
        the explorer's spec (or the defaults)."""
        meta = self.runners[name].meta
        if meta.inference or self.spec is None:
            return infer_spec_from_model(meta) if meta.inference else InferSpec()
        return self.spec

    def _use_model_settings(self) -> None:
        """Input size and aspect mode jump to the selected model's starting values."""
        spec = self._model_spec(self.controls["model"].value)
        with self._quiet():
            self.controls["input_size"].value = int(spec.input_shape[0])
            self.controls["aspect_mode"].value = spec.keep_aspect_ratio_mode or "adjust_network_input"

    def _input_shape(self, name: str, size: int, mode: str) -> tuple[int, int]:
        """(H, W) for the input-size control: the model's own aspect for fixed-size modes, square otherwise."""
        h0, w0 = self._model_spec(name).input_shape
        if mode in ("pad_image_input", "stretch", "letterbox"):
            return size, max(8, int(round(size * w0 / h0 / 8)) * 8)
        return size, size

    def _on_upload(self, change) -> None:
        files = change["new"] or ()
        if isinstance(files, dict):  # ipywidgets 7 layout: name → {content, metadata}
            files = [{"name": k, "content": v["content"]} for k, v in files.items()]
        if not files:
            return
        with self._quiet():
            self.controls["upload"].value = ()  # the bytes are on disk now; the same file can be chosen again
        for f in files:
            try:
                self.add_image_bytes(f["name"], bytes(f["content"]))
            except BpnetError as exc:
                self.error = str(exc)
                self.status.value = f"<span style='color:#b00020'>&#9888; {html.escape(str(exc))}</span>"

    def _scales(self) -> list[float] | None:
        if not self.controls["multi_scale"].value:
            return None
        return _parse_scales(self.controls["scales"].value)

    def _image(self) -> tuple[str, np.ndarray, np.ndarray]:
        """(path, original BGR image, display-size copy), cached for the current image."""
        path = self.controls["image"].value
        if self._image_cache is None or self._image_cache[0] != path:
            img = read_image(path)
            h, w = img.shape[:2]
            f = self.display_size / max(h, w)
            disp = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))),
                              interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)  # fmt: skip
            self._image_cache = (path, img, disp)
        return self._image_cache

    def _forward(self, force: bool) -> None:
        c = self.controls
        scales = self._scales()
        key = (c["image"].value, c["model"].value, int(c["input_size"].value), c["aspect_mode"].value,
               int(c["stage"].value), tuple(scales or ()), bool(c["flip_test"].value))  # fmt: skip
        if key == self._net_key and not force and self.result is not None:
            return
        path, image, _ = self._image()
        name, mode = c["model"].value, c["aspect_mode"].value
        self._net_key = None
        self.debug = None
        spec = self._model_spec(name).model_copy(update={
            "input_shape": list(self._input_shape(name, int(c["input_size"].value), mode)),
            "keep_aspect_ratio_mode": mode, "output_stage_to_use": int(c["stage"].value) or None,
            "multi_scale_inference": bool(scales), "scales": list(scales or [1.0]),
            "flip_test": bool(c["flip_test"].value)})  # fmt: skip
        predictor = Predictor(self.runners[name], spec)
        t0 = time.perf_counter()
        heat, paf, ref = predictor.maps(image, path)
        self.forward_passes += 1
        self._strides, self._box = (predictor.heat_stride, predictor.paf_stride), ref.box
        self.result = ImageResult(np.zeros((0, self.pose.num_joints, 3), np.float32), [], heat, paf, ref.input_hw,
                                  ref.matrix)  # fmt: skip
        self._net_key = key
        self.timings_ms["network"] = (time.perf_counter() - t0) * 1000

    def _decode(self) -> None:
        res = self.result
        t0 = time.perf_counter()
        self.debug = decode_debug(res.heatmaps, res.pafs, self.pose, self.params, stride=self._strides[0],
                                  paf_stride=self._strides[1])  # fmt: skip
        self.decodes += 1
        self.timings_ms["decode"] = (time.perf_counter() - t0) * 1000

    def _draw(self, level: int) -> None:
        t0 = time.perf_counter()
        if level >= DECODE:
            self.image_view.value = to_png(self._people_picture())
            self.table.value = self._table_html()
        if level != DECODE or self.controls["layer"].value in ("heatmap", "candidates"):  # these show decoder output
            self.map_view.value = to_png(self._map_picture())
        self.draws += 1
        self.timings_ms["draw"] = (time.perf_counter() - t0) * 1000
        self.timing.value = self._timing_html()
