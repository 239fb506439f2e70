"""Video: frames/s of the pipelined reader/network/decoder vs the same steps run serially, and identity switches and
end-to-end frames/s of the shipped real networks on the pan/zoom clip of a real COCO photo.

    bpnet bench --only video
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

PHOTO = "000000197388.jpg"  # five people, 13 to 16 labelled joints each
BACKENDS = {"human-pose-estimation-0001": "OpenVINO", "mobilenet_thin": "ONNX Runtime"}


def run(work: Path, report: dict | None = None, quick: bool = False) -> dict:
    from bpnet_core.data.pan_zoom import generate_pan_zoom_video
    from bpnet_core.infer.video import run_video_inference
    from bpnet_core.paths import PROJECT_ROOT
    from bpnet_core.track import evaluate_video_tracking
    from bpnet_core.tutorial import real_networks

    work = Path(work) / "video"
    sample = PROJECT_ROOT / "tests" / "fixtures" / "coco_sample"
    frames = 30 if quick else 90
    clip = generate_pan_zoom_video(work / "clip", sample / PHOTO, sample / "person_keypoints_val2017_sample.json",
                                   num_frames=frames)  # fmt: skip
    nets = real_networks(work, list(BACKENDS))
    rows, throughput = [], {}
    for name, model in nets.items():
        fps = {True: [], False: []}
        for rep in range(1 if quick else 2):  # interleaved: pipelined, serial, pipelined, serial
            for mode in (True, False):
                out = work / f"{name}_{mode}_{rep}"
                s = run_video_inference(model, clip["video"], out, progress=False, pipelined=mode)
                fps[mode].append(s["frames_per_second"])
                if mode and rep == 0:
                    m = evaluate_video_tracking(out / "detections.json", clip["annotations"])
        best = {k: max(v) for k, v in fps.items()}
        throughput[name] = {"pipelined_fps": round(best[True], 2), "serial_fps": round(best[False], 2),
                            "ratio": round(best[True] / best[False], 2)}  # fmt: skip
        rows.append({"network": name, "backend": BACKENDS[name], "frames": m["frames"], "id_switches": m["id_switches"],
                     "id_switches_per_100_frames": round(100 * m["id_switches"] / m["frames"], 2),
                     "mota": round(m["mota"], 3), "idf1": round(m["idf1"], 3), **throughput[name]})  # fmt: skip
        log.info("bench video: %s", rows[-1])
    out = {"clip": {"photo": PHOTO, "frames": frames, "size": clip["frame_size"], "tracks": clip["tracks"]},
           "rows": rows}  # fmt: skip
    out["markdown"] = markdown(out)
    return out


def markdown(res: dict) -> str:
    c = res["clip"]
    lines = [f"**Video** (pan/zoom clip of COCO {c['photo']}: {c['frames']} frames of {c['size'][1]}×{c['size'][0]}, "
             f"{c['tracks']} people; end-to-end frames/s = read, preprocess, network, decode, track; best of the "
             "interleaved runs):", "",
             "| network | backend | ID switches | per 100 frames | MOTA | IDF1 | pipelined frames/s | serial frames/s "
             "| ratio |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in res["rows"]:
        lines.append(f"| {r['network']} | {r['backend']} | {r['id_switches']} | {r['id_switches_per_100_frames']:.1f} "
                     f"| {r['mota']:.3f} | {r['idf1']:.3f} | {r['pipelined_fps']:.1f} | {r['serial_fps']:.1f} "
                     f"| {r['ratio']:.2f}× |")  # fmt: skip
    return "\n".join(lines)
