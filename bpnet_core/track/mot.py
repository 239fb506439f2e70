"""A small MOT evaluator for pose tracks: ground-truth ids vs predicted ids, people matched per frame by OKS.

Per frame, ground-truth and predicted people (predictions with id < 0 are ignored) are matched one-to-one by
:func:`scipy.optimize.linear_sum_assignment` on OKS, keeping pairs with OKS >= ``oks_threshold`` (0.5). Then, as in
the CLEAR-MOT and identity measures (Bernardin & Stiefelhagen 2008; Ristani et al. 2016):

* ``id_switches``: a ground-truth track matched to a different predicted id than at its previous match;
* ``fragmentations``: a ground-truth track's matched run interrupted (it is present but unmatched) and resumed;
* ``mota = 1 - (misses + false_positives + id_switches) / ground-truth people``;
* ``idf1 = 2 IDTP / (ground-truth people + predicted people)`` with IDTP from the best one-to-one map between
  ground-truth ids and predicted ids (over the whole clip; a pair's weight is its number of matched frames).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.optimize import linear_sum_assignment

from bpnet_core.track.oks import oks_matrix, sigmas_for


def evaluate_mot(gt_frames: list, pred_frames: list, sigmas=None, oks_threshold: float = 0.5) -> dict:
    """``gt_frames`` / ``pred_frames``: one ``(keypoints (P, J, 3), ids)`` per frame, same frames in the same order
    (ground-truth keypoints with confidence 0 are unlabelled). Returns the counts and measures above."""
    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"{len(gt_frames)} ground-truth frames but {len(pred_frames)} predicted frames")
    num_gt = num_pred = misses = fps = switches = frags = matches = 0
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
                if g in tracked_last and not tracked_last[g]:
                    frags += 1
                last_match[g] = t
                tracked_last[g] = True
            elif g in tracked_last:
                tracked_last[g] = False
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
        "fragmentations": frags,
        "mota": 1.0 - (misses + fps + switches) / num_gt if num_gt else float("nan"),
        "idf1": 2 * idtp / (num_gt + num_pred) if num_gt + num_pred else float("nan"),
        "idtp": idtp,
        "gt_tracks": len(g_ids),
        "predicted_tracks": len(p_ids),
    }


def _names(num_joints: int) -> list[str]:
    from bpnet_core.data.coco import COCO_KEYPOINTS

    return COCO_KEYPOINTS if num_joints == len(COCO_KEYPOINTS) else [f"joint{j}" for j in range(num_joints)]
