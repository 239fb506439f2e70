"""INT8 with accuracy control for real networks: quantise everything (after the depthwise equalisation of
:mod:`bpnet_core.int8.ptq_real`), then keep layer groups in float, one at a time, until a validation score says the
model is within ``max_drop`` of FP32 (``bpnet export`` uses the agreement AP with FP32's people on calibration photos).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bpnet_core.errors import BpnetError
from bpnet_core.int8.ptq_real import (
    check_batches,
    equalize_depthwise,
    layer_groups,
    load_onnx_proto,
    quantize_onnx_int8,
    quantize_openvino_int8,
)
from bpnet_core.meta import set_onnx_meta, write_ir


def _quantisable_groups(proto, groups) -> list[tuple[str, list[str]]]:
    """Groups that hold a quantisable node, in graph order of their last node (ONNX graphs are topologically
    sorted, so this is input side first)."""
    pos = {n.name: i for i, n in enumerate(proto.graph.node)}
    ops = {n.name: n.op_type for n in proto.graph.node}
    unknown = [x for v in groups.values() for x in v if x not in pos]
    if unknown:
        raise BpnetError(f"groups name node {unknown[0]!r} which is not in the model ({len(unknown)} unknown)")
    keep = [(k, list(v)) for k, v in groups.items()
            if any(ops[x] in ("Conv", "ConvTranspose", "MatMul", "Gemm", "Concat") for x in v)]  # fmt: skip
    return sorted(keep, key=lambda kv: (max(pos[x] for x in kv[1]), kv[0]))


def _in_openvino(model, names: list[str]) -> list[str]:
    """The ONNX node names of a layer group that the OpenVINO model still has: shape arithmetic (the Shape / Slice /
    Concat nodes tf2onnx writes around a dilated convolution of a dynamic-size graph) is folded away on conversion,
    and it carries no activations to keep in float anyway."""
    ops = [op.get_friendly_name() for op in model.get_ops()]
    have = set(ops)
    return [n for n in names if n in have or any(o.startswith(n + "/") for o in ops)]


def accuracy_controlled_int8(fp32_onnx, calibration_batches, validate, output_path, *, backend: str = "onnx",
                             max_drop: float = 0.02, reference_score: float | None = None, groups=None,
                             ranking: str = "output_first", time_budget_s: float = 900.0, meta=None,
                             **quant_kwargs) -> dict:  # fmt: skip
    """INT8 with accuracy control: quantise everything (after :func:`equalize_depthwise`), then keep layer groups
    in float until ``validate`` says the model is within ``max_drop`` of FP32. Deterministic; bounded in time.

    ``validate(model_path) -> float``: higher is better, e.g. agreement AP of the model's decoded people against
    FP32's on calibration photos (:func:`bpnet_core.evaluate.agreement.agreement_ap`; never the evaluation set).
    ``reference_score``: FP32's score (default ``validate(fp32_onnx)``); the target is ``reference − max_drop``.
    ``groups``: {name: ONNX node names} reverted together (default :func:`layer_groups`). ``ranking``: the order in
    which groups go back to float: ``"output_first"`` (free: the refinement stages at the output amplify
    quantisation error most) or ``"sensitivity"`` (one quantisation + validation per group: the score with that
    group alone in float, best first; groups not ranked within ``time_budget_s / 2`` follow output-first).
    The number k of leading groups kept in float is then found by bisection (full INT8 is tried first; k = all
    means no INT8 at all), so about log2(len(groups)) quantisations + validations. ``backend``: ``"onnx"``
    (ONNX Runtime QDQ, :func:`quantize_onnx_int8`) or ``"openvino"`` (NNCF, :func:`quantize_openvino_int8`; the
    output is an IR ``.xml``). ``meta``: a model contract written into every candidate (so that ``validate`` can
    load it with bpnet's runners). When the time budget runs out, the best model measured so far is written and
    ``passed`` tells whether it met the target.

    Returns {"passed", "score", "target", "reference_score", "groups_float" (in order), "nodes_float",
    "groups_total", "steps" (k, score, seconds per measured candidate), "ranking", "seconds"}."""
    import shutil
    import time

    import onnx

    t0 = time.perf_counter()
    if backend not in ("onnx", "openvino"):
        raise BpnetError(f"backend must be 'onnx' or 'openvino' (got {backend!r})")
    if ranking not in ("output_first", "sensitivity"):
        raise BpnetError(f"ranking must be 'output_first' or 'sensitivity' (got {ranking!r})")
    out = Path(output_path)
    if out.suffix.lower() != (".xml" if backend == "openvino" else ".onnx"):
        raise BpnetError(f"{out}: backend {backend} writes a {'.xml' if backend == 'openvino' else '.onnx'} file")
    batches = check_batches(calibration_batches)
    src = load_onnx_proto(fp32_onnx)
    ordered = _quantisable_groups(src, groups or layer_groups(src))
    if not ordered:
        raise BpnetError("no quantisable layer group (Conv/MatMul/Gemm/Concat) in the model")
    eq, eq_report = equalize_depthwise(src, batches)
    ref = float(validate(str(fp32_onnx))) if reference_score is None else float(reference_score)
    target = ref - float(max_drop)
    tmp = Path(tempfile.mkdtemp(prefix=".acc_int8.", dir=out.parent if out.parent.is_dir() else None))
    try:
        eq_path = tmp / "eq.onnx"
        onnx.save(eq, str(eq_path))
        cache: dict[tuple, tuple[float, Path]] = {}
        steps: list[dict] = []

        def measure(exclude_groups: list[str], tag: str) -> float:
            key = tuple(sorted(exclude_groups))
            if key in cache:
                return cache[key][0]
            t = time.perf_counter()
            names = [x for k, v in ordered if k in set(exclude_groups) for x in v]
            cand = tmp / f"c{len(cache)}{out.suffix}"
            if backend == "onnx":
                quantize_onnx_int8(eq_path, cand, batches, exclude=names, equalize=False, **quant_kwargs)
                if meta is not None:
                    proto = onnx.load(str(cand))
                    set_onnx_meta(proto, meta)
                    onnx.save(proto, str(cand))
            else:
                import openvino as ov

                model = ov.convert_model(str(eq_path))
                q, _ = quantize_openvino_int8(model, batches, ignored=_in_openvino(model, names), **quant_kwargs)
                if meta is not None:
                    write_ir(q, cand, meta)
                else:
                    ov.save_model(q, str(cand), compress_to_fp16=False)
            score = float(validate(str(cand)))
            cache[key] = (score, cand)
            steps.append({"step": tag, "groups_float": len(exclude_groups), "score": round(score, 4),
                          "seconds": round(time.perf_counter() - t, 1)})  # fmt: skip
            return score

        def out_of_time() -> bool:
            return time.perf_counter() - t0 > time_budget_s

        order = [k for k, _ in reversed(ordered)]  # output side first
        if measure([], "all int8") < target and ranking == "sensitivity":
            gains = {}
            for k in order:
                if time.perf_counter() - t0 > time_budget_s / 2:
                    break
                gains[k] = measure([k], f"rank {k}")
            order = sorted(gains, key=lambda k: (-gains[k], order.index(k))) + [k for k in order if k not in gains]
        lo, hi = 0, len(order)  # lo: known to fail (or k=0 passes), hi: assumed to pass (all float = FP32)
        if cache[()][0] >= target:
            hi = 0
        while hi - lo > 1 and not out_of_time():
            mid = (lo + hi) // 2
            if measure(order[:mid], f"bisect k={mid}") >= target:
                hi = mid
            else:
                lo = mid
        chosen = order[:hi]
        key = tuple(sorted(chosen))
        if key not in cache and hi < len(order):  # budget ran out before hi was measured: keep the best measured
            key = max(cache, key=lambda kk: (cache[kk][0], -len(kk)))
            chosen = [k for k in order if k in set(key)]
        if key in cache:
            score, path = cache[key]
            if backend == "openvino":
                shutil.copyfile(path.with_suffix(".bin"), out.with_suffix(".bin"))
            shutil.copyfile(path, out)
        else:  # every group in float: nothing left to quantise, the FP32 model is the answer
            score = ref
            proto = onnx.ModelProto()
            proto.CopyFrom(src)
            if backend == "onnx":
                if meta is not None:
                    set_onnx_meta(proto, meta)
                onnx.save(proto, str(out))
            else:
                import openvino as ov

                onnx.save(proto, str(tmp / "fp32.onnx"))
                model = ov.convert_model(str(tmp / "fp32.onnx"))
                if meta is not None:
                    write_ir(model, out, meta)
                else:
                    ov.save_model(model, str(out), compress_to_fp16=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    nodes = [x for k, v in ordered if k in set(chosen) for x in v]
    return {"passed": bool(score >= target), "score": score, "target": target, "reference_score": ref,
            "groups_float": chosen, "nodes_float": nodes, "groups_total": len(ordered), "steps": steps,
            "ranking": ranking, "equalize": eq_report, "output_file": str(out),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
