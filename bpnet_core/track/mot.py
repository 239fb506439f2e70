"""A small MOT evaluator for pose tracks: ground-truth ids vs predicted ids, people matched per frame by OKS.

Per frame, ground-truth and predicted people (predictions with id < 0 are ignored) are matched one-to-one by
:func:`scipy.optimize.linear_sum_assignment` on OKS, keeping pairs with OKS >= ``oks_threshold`` (0.5). Then, as in
the CLEAR-MOT and identity measures (Bernardin & Stiefelhagen 2008; Ristani et al. 2016):

* ``id_switches``: a ground-truth track matched to a different predicted id than at its previous match;
  ``id_switches_after_absence`` counts those of them where the person was absent from the previous frame's ground
  truth (out of the picture, or hidden): a person coming back into view, whom a tracker without an appearance model
  can only re-identify by position;
* ``fragmentations``: a ground-truth track's matched run interrupted (it is present but unmatched) and resumed;
* ``mota = 1 - (misses + false_positives + id_switches) / ground-truth people``;
* ``idf1 = 2 IDTP / (ground-truth people + predicted people)`` with IDTP from the best one-to-one map between
  ground-truth ids and predicted ids (over the whole clip; a pair's weight is its number of matched frames).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.optimize import linear_sum_assignment

from bpnet_core.data.coco import COCO_KEYPOINTS
from bpnet_core.data.synthetic_video import load_video_ground_truth
from bpnet_core.fileio import read_json
from bpnet_core.track.oks import oks_matrix, sigmas_for
from bpnet_core.track.tracker import Tracker
from bpnet_core.track_params import TrackParams


def evaluate_mot(gt_frames: list, pred_frames: list, sigmas=None, oks_threshold: float = 0.5) -> dict:
    """``gt_frames`` / ``pred_frames``: one ``(keypoints (P, J, 3), ids)`` per frame, same frames in the same order
    (ground-truth keypoints with confidence 0 are unlabelled). Returns the counts and measures above."""
    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"{len(gt_frames)} ground-truth frames but {len(pred_frames)} predicted frames")
    num_gt = num_pred = misses = fps = switches = frags = matches = absent_switches = 0
    previous: set = set()  # gt ids of the previous frame
    last_match: dict = {}  # gt id -> predicted id of its last match
    tracked_last: dict = {}  # gt id -> matched in its previous presence
    pair_count: dict = defaultdict(int)
    gt_len: dict = defaultdict(int)
    pred_len: dict = defaultdict(int)
    for (gk, gids), (pk, pids) in zip(gt_frames, pred_frames):
        gk = np.asarray(gk, np.float64)
        pk = np.asarray(pk, np.float64)
        gids, pids = list(gids), list(pids)
        keep = [i for i, t in enumerate(pids) if t is not None and t >= 0]
        pk = pk.reshape(-1, *gk.shape[1:]) if gk.size else pk
        pk, pids = (pk[keep], [pids[i] for i in keep]) if len(pids) else (pk, pids)
        num_gt += len(gids)
        num_pred += len(pids)
        for g in gids:
            gt_len[g] += 1
        for t in pids:
            pred_len[t] += 1
        pairs = []
        if len(gids) and len(pids):
            J = gk.shape[1]
            sig = sigmas if sigmas is not None else sigmas_for(_names(J))
            sim = oks_matrix(gk, pk, sig)
            rows, cols = linear_sum_assignment(-sim)
            pairs = [(r, c) for r, c in zip(rows, cols) if sim[r, c] >= oks_threshold]
        matched_g = {gids[r]: pids[c] for r, c in pairs}
        matches += len(pairs)
        misses += len(gids) - len(pairs)
        fps += len(pids) - len(pairs)
        for g in gids:
            if g in matched_g:
                t = matched_g[g]
                pair_count[(g, t)] += 1
                if g in last_match and last_match[g] != t:
                    switches += 1
                    absent_switches += g not in previous
                if g in tracked_last and not tracked_last[g]:
                    frags += 1
                last_match[g] = t
                tracked_last[g] = True
            elif g in tracked_last:
                tracked_last[g] = False
        previous = set(gids)
    # identity measures: best one-to-one gt id <-> predicted id map
    g_ids, p_ids = sorted(gt_len), sorted(pred_len)
    idtp = 0
    if g_ids and p_ids:
        w = np.zeros((len(g_ids), len(p_ids)))
        gi, pi = {g: i for i, g in enumerate(g_ids)}, {t: i for i, t in enumerate(p_ids)}
        for (g, t), k in pair_count.items():
            w[gi[g], pi[t]] = k
        rows, cols = linear_sum_assignment(-w)
        idtp = int(w[rows, cols].sum())
    return {
        "frames": len(gt_frames),
        "gt": num_gt,
        "predicted": num_pred,
        "matches": matches,
        "misses": misses,
        "false_positives": fps,
        "id_switches": switches,
        "id_switches_after_absence": absent_switches,
        "fragmentations": frags,
        "mota": 1.0 - (misses + fps + switches) / num_gt if num_gt else float("nan"),
        "idf1": 2 * idtp / (num_gt + num_pred) if num_gt + num_pred else float("nan"),
        "idtp": idtp,
        "gt_tracks": len(g_ids),
        "predicted_tracks": len(p_ids),
    }


def _names(num_joints: int) -> list[str]:
    return COCO_KEYPOINTS if num_joints == len(COCO_KEYPOINTS) else [f"joint{j}" for j in range(num_joints)]


def evaluate_video_tracking(detections, annotations, min_visible: int = 3, oks_threshold: float = 0.5) -> dict:
    """:func:`evaluate_mot` of a video run (``detections.json`` of ``bpnet inference --input_type video``, a path
    or the loaded dict) against a clip's ground truth (``annotations.json`` of ``bpnet synthetic_video``).

    Frames are paired by ``frame_index`` (with ``--stride_frames`` only the processed ones count). Predicted joints
    are mapped to the ground truth's joints by name (a joint at (0, 0) is missing); ground-truth people count when
    at least ``min_visible`` of their joints are visible (``v = 2``): a person hidden but for a hand is not a miss."""
    det = read_json(detections, "detections file") if not isinstance(detections, dict) else detections
    names, gt_frames = load_video_ground_truth(annotations)
    gt_index = [f["frame_index"] for f in sorted(read_json(annotations, "video annotation file")["images"],
                                                 key=lambda im: im["frame_index"])]  # fmt: skip
    gt_by_frame = dict(zip(gt_index, gt_frames))
    joints = det["categories"][0]["keypoints"]
    cols = [joints.index(n) if n in joints else -1 for n in names]
    gt, pred = [], []
    for f in det["images"]:
        if f["frame_index"] not in gt_by_frame:
            raise ValueError(f"{annotations}: no ground truth for frame {f['frame_index']}")
        kp, ids = gt_by_frame[f["frame_index"]]
        keep = [i for i in range(len(kp)) if (kp[i, :, 2] == 2).sum() >= min_visible]
        gt.append((kp[keep].reshape(len(keep), len(names), 3), [ids[i] for i in keep]))
        xy = np.array(f["keypoints"], np.float64).reshape(len(f["keypoints"]), len(joints), 2)
        p = np.zeros((len(xy), len(names), 3))
        for i, c in enumerate(cols):
            if c >= 0:
                p[:, i, :2] = xy[:, c]
                p[:, i, 2] = np.abs(xy[:, c]).sum(-1) > 0
        pred.append((p, f["track_ids"]))
    return evaluate_mot(gt, pred, oks_threshold=oks_threshold)


def retrack(detections, params: dict | None = None) -> dict:
    """A video run's detections (``detections.json`` of ``bpnet inference --input_type video``, a path or the loaded
    dict) with their ``track_ids`` replaced by a new :class:`~bpnet_core.track.Tracker` run with ``params`` (the
    ``tracking:`` block's keys) over their keypoints: other tracker settings on the same detections, without running
    the network again. The frames are not read, so ``camera_motion: image`` finds no camera motion here (use
    ``"pose"`` or ``"still"``); the picture's size comes from the file's ``video`` block."""
    import copy

    det = copy.deepcopy(detections) if isinstance(detections, dict) else read_json(detections, "detections file")
    names = det["categories"][0]["keypoints"]
    video = det.get("video", {})
    size = (video["height"], video["width"]) if "height" in video and "width" in video else None
    tracker = Tracker(TrackParams.from_dict(params), names)
    for f in det["images"]:
        xy = np.array(f["keypoints"], np.float64).reshape(len(f["keypoints"]), len(names), 2)
        kp = np.concatenate([xy, (np.abs(xy).sum(-1, keepdims=True) > 0).astype(np.float64)], -1)
        f["track_ids"] = tracker.update(kp, None, f["frame_index"], size)
    return det
