"""Video: identity switches and end-to-end frames/s of the shipped real networks on pan/zoom clips of real COCO
photos, and frames/s of the pipelined reader/network/decoder vs the same steps run serially.

    bpnet bench --only video

Each network runs once per clip with the default tracker (``camera_motion: image``); the same detections are then
tracked again with ``camera_motion: still`` (no frames needed), so the table shows what the camera-motion
compensation changes on identical detections.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bpnet_core.data.pan_zoom import generate_pan_zoom_video
from bpnet_core.fileio import read_json
from bpnet_core.infer.video import run_video_inference
from bpnet_core.paths import PROJECT_ROOT
from bpnet_core.tables import format_table
from bpnet_core.track import evaluate_video_tracking, retrack
from bpnet_core.tutorial import real_networks

log = logging.getLogger(__name__)

#: the clips' photos (from tests/fixtures/coco_sample): five people with 13 to 16 labelled joints each, and four
#: people with 12 to 17; throughput is measured on the first
PHOTOS = ("000000197388.jpg", "000000196141.jpg")
PHOTO = PHOTOS[0]
BACKENDS = {"human-pose-estimation-0001": "OpenVINO", "mobilenet_thin": "ONNX Runtime"}


def run(work: Path, report: dict | None = None, quick: bool = False, photos: tuple[str, ...] = PHOTOS) -> dict:
    work = Path(work) / "video"
    sample = PROJECT_ROOT / "tests" / "fixtures" / "coco_sample"
    frames = 30 if quick else 90
    nets = real_networks(work, list(BACKENDS))
    rows, throughput, clips = [], [], []
    for k, photo in enumerate(photos):
        ann = sample / "person_keypoints_val2017_sample.json"
        clip = generate_pan_zoom_video(work / f"clip{k}", sample / photo, ann, num_frames=frames)
        clips.append({"photo": photo, "frames": frames, "size": clip["frame_size"], "tracks": clip["tracks"]})
        for name, model in nets.items():
            fps = {True: [], False: []}
            # on the first clip: interleaved pipelined, serial, pipelined, serial; on the others one pipelined run
            for rep in range((1 if quick else 2) if k == 0 else 1):
                for mode in (True, False) if k == 0 else (True,):
                    out = work / f"{name}_{k}_{mode}_{rep}"
                    s = run_video_inference(model, clip["video"], out, progress=False, pipelined=mode)
                    fps[mode].append(s["frames_per_second"])
                    if mode and rep == 0:
                        det = read_json(out / "detections.json", "detections file")
                        m = evaluate_video_tracking(det, clip["annotations"])
                        still = evaluate_video_tracking(retrack(det, {"camera_motion": "still"}), clip["annotations"])
            if k == 0:
                best = {mode: max(v) for mode, v in fps.items()}
                throughput.append({"network": name, "backend": BACKENDS[name], "pipelined_fps": round(best[True], 2),
                                   "serial_fps": round(best[False], 2),
                                   "ratio": round(best[True] / best[False], 2)})  # fmt: skip
            rows.append({"photo": photo, "network": name, "backend": BACKENDS[name], "frames": m["frames"],
                         "id_switches": m["id_switches"],
                         "id_switches_per_100_frames": round(100 * m["id_switches"] / m["frames"], 2),
                         "mota": round(m["mota"], 3), "idf1": round(m["idf1"], 3),
                         "id_switches_still": still["id_switches"], "mota_still": round(still["mota"], 3),
                         "idf1_still": round(still["idf1"], 3), "fps": round(max(fps[True]), 2)})  # fmt: skip
            log.info("bench video: %s", rows[-1])
    out = {"clips": clips, "rows": rows, "throughput": throughput}
    out["markdown"] = markdown(out)
    return out


def markdown(res: dict) -> str:
    clips = "; ".join(f"COCO {c['photo']}: {c['frames']} frames of {c['size'][1]}×{c['size'][0]}, {c['tracks']} people"
                      for c in res["clips"])  # fmt: skip
    lines = [f"**Video** (pan/zoom clips, {clips}; identities with the default tracker, and with the same detections "
             "tracked again with `camera_motion: still`; end-to-end frames/s = read, preprocess, network, decode, "
             "track):", ""]  # fmt: skip
    header = ["clip", "network", "backend", "ID switches", "per 100 frames", "MOTA", "IDF1",
              "`still` camera: switches / MOTA / IDF1", "frames/s"]  # fmt: skip
    rows = [[r["photo"], r["network"], r["backend"], r["id_switches"], f"{r['id_switches_per_100_frames']:.1f}",
             f"{r['mota']:.3f}", f"{r['idf1']:.3f}",
             f"{r['id_switches_still']} / {r['mota_still']:.3f} / {r['idf1_still']:.3f}", f"{r['fps']:.1f}"]
            for r in res["rows"]]  # fmt: skip
    lines.append(format_table(header, rows, align="lll" + "r" * 6))
    lines += ["", f"Pipelined vs serial (clip of {res['clips'][0]['photo']}, best of the interleaved runs):", ""]
    rows = [[r["network"], r["backend"], f"{r['pipelined_fps']:.1f}", f"{r['serial_fps']:.1f}", f"{r['ratio']:.2f}×"]
            for r in res["throughput"]]  # fmt: skip
    lines.append(format_table(["network", "backend", "pipelined frames/s", "serial frames/s", "ratio"], rows,
                              align="llrrr"))  # fmt: skip
    return "\n".join(lines)
