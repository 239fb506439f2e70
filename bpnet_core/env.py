"""Environment check for notebook 00 and ``bpnet bench``: versions, CPU/GPU, optional back-ends."""

from __future__ import annotations

import importlib.util
import os
import platform


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        from importlib.metadata import version

        dists = {"cv2": "opencv-python-headless", "tensorflow": "tensorflow-cpu", "tensorrt": "tensorrt"}
        dist = dists.get(module, module)
        try:
            return version(dist)
        except Exception:  # noqa: BLE001 - distribution name differs; fall back to the module attribute
            mod = importlib.import_module(module)
            return str(getattr(mod, "__version__", "installed"))
    except Exception:  # noqa: BLE001
        return "installed"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU features that decide INT8 and bf16 speed, as /proc/cpuinfo names them.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


def environment_report(probe_gpu: bool = True) -> dict:
    """What this machine offers bpnet. ``probe_gpu`` imports TensorFlow to list GPUs (a few seconds)."""
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "packages": {
            m: _version(m)
            for m in (
                "numpy",
                "cv2",
                "tensorflow",
                "keras",
                "pycocotools",
                "onnx",
                "onnxruntime",
                "tf2onnx",
                "tensorrt",
            )
        },  # fmt: skip
        "gpus": [],
        "tensorrt": importlib.util.find_spec("tensorrt") is not None,
    }
    if probe_gpu and importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        report["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        report["onnxruntime_providers"] = ort.get_available_providers()
    report["notes"] = _notes(report)
    return report


def _notes(r: dict) -> list[str]:
    notes = []
    if not r["gpus"]:
        notes.append("No GPU: training uses the CPU; the demo profile is sized for that (minutes, not days).")
    if not r["tensorrt"]:
        notes.append(
            "TensorRT is not installed: engines cannot be built here; ONNX Runtime (FP32/INT8) is the "
            "deployment path, and the TensorRT cells are skipped with a message."
        )
    return notes


def format_report(r: dict) -> str:
    """A short human-readable table of :func:`environment_report`."""
    lines = [f"Python {r['python']} on {r['platform']}", f"CPU: {r['cpu']} ({r['cpu_count']} cores)",
             f"GPUs: {', '.join(r['gpus']) or 'none'}"]  # fmt: skip
    lines += [f"  {k:<12} {v or 'not installed'}" for k, v in r["packages"].items()]
    if "onnxruntime_providers" in r:
        lines.append(f"ONNX Runtime providers: {', '.join(r['onnxruntime_providers'])}")
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)
