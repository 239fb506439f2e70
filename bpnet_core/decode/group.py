"""Assembling accepted limb connections into people (OpenPose / TAO "subset" merging).

Limbs are visited in the pose config's edge order; within a limb, its accepted connections best first. For a
connection (peak ``p`` of joint a, peak ``q`` of joint b) with line-integral score ``c``, the people that already hold
``p`` (as their joint a) or ``q`` (as their joint b) are looked up:

* **one person** holds it: if its joint b is not ``q``, joint b becomes ``q`` (a different earlier ``q'`` is
  replaced, as in TAO); if it holds ``q`` but has no joint a, joint a becomes ``p`` (our addition: TAO/OpenPose
  only ever fill the end joint, which splits people when a skeleton's edges are not listed root-outwards, e.g. the
  COCO-17 config; for TAO's root-outward 18-joint order it only adds an eye whose nose was not found);
* **two people**: merged when they share no joint (the lower-index person takes the other's joints, scores and
  ``c``), otherwise the first one takes ``q`` as its joint b;
* **nobody**: a new person ``{p, q}`` is started, except by the last two limbs (index ≥ L − 2), which in TAO's
  18-joint order are the ear edges (right_eye→right_ear, left_eye→left_ear): an ear alone does not make a person.
  Skeletons with two limbs or fewer let every limb start a person.

A person's summed score Σ = its joints' peak values + its connections' scores. People with fewer than
``min_parts`` joints or with ``Σ / parts < min_person_score`` are dropped; the reported ``score`` is TAO's
``1 − 1/Σ`` (monotone in Σ; with the default filters Σ ≥ 4 × 0.4, so every reported score is in [0.375, 1)).
People are returned best first. Unlike TAO (which also increments the part count when a joint is
replaced), ``num_parts`` is the number of joints the person holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bpnet_core.decode.params import DecodeParams
from bpnet_core.decode.peaks import Peaks
from bpnet_core.skeleton import PoseConfig


@dataclass
class Person:
    """One decoded person.

    ``keypoints`` float32 (J, 3): x, y in network-input pixels and the joint's peak value (0 with x = y = 0 for a
    missing joint); ``score`` = 1 − 1/Σ (TAO); ``num_parts`` joints found; ``mean_score`` = Σ / num_parts (the
    quantity ``min_person_score`` filters); ``peak_ids`` int (J,) index into the image's :class:`Peaks` (−1 missing).
    """

    keypoints: np.ndarray
    score: float
    num_parts: int
    mean_score: float = 0.0
    peak_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def assemble(
    peaks: Peaks,
    connections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    pose: PoseConfig,
    params: DecodeParams,
) -> list[Person]:
    """People from ``connections[k]`` = (start peak ids, end peak ids, scores) of limb k, accepted and best first."""
    num_joints = pose.num_joints
    num_limbs = pose.num_limbs
    starts_limit = num_limbs - 2 if num_limbs > 2 else num_limbs
    peak_score = peaks.score.astype(np.float64).tolist()

    slots: dict[int, list[int]] = {}  # person id → peak id per joint (−1 missing); ids increase with creation
    total: dict[int, float] = {}  # person id → Σ
    parts: dict[int, int] = {}
    holders: dict[int, set[int]] = {}  # peak id → person ids holding it
    next_id = 0

    def put(h: int, joint: int, pid: int) -> None:
        old = slots[h][joint]
        if old >= 0:
            holders[old].discard(h)
        else:
            parts[h] += 1
        slots[h][joint] = pid
        holders.setdefault(pid, set()).add(h)

    for k, (ja, jb) in enumerate(pose.limbs):
        if k >= len(connections):
            break
        starts, ends, scores = connections[k]
        for p, q, c in zip(np.asarray(starts).tolist(), np.asarray(ends).tolist(), np.asarray(scores).tolist()):
            sharing = sorted(holders.get(p, set()) | holders.get(q, set()))
            if len(sharing) == 1:
                h = sharing[0]
                if slots[h][jb] != q:
                    put(h, jb, q)
                    total[h] += peak_score[q] + c
                elif slots[h][ja] < 0:
                    put(h, ja, p)
                    total[h] += peak_score[p] + c
            elif len(sharing) == 2:
                h1, h2 = sharing
                if not any(x >= 0 and y >= 0 for x, y in zip(slots[h1], slots[h2])):
                    for joint, pid in enumerate(slots[h2]):
                        if pid >= 0:
                            holders[pid].discard(h2)
                            slots[h1][joint] = pid
                            holders[pid].add(h1)
                    parts[h1] += parts.pop(h2)
                    total[h1] += total.pop(h2) + c
                    del slots[h2]
                elif slots[h1][jb] != q:
                    put(h1, jb, q)
                    total[h1] += peak_score[q] + c
            elif not sharing and k < starts_limit:
                h = next_id
                next_id += 1
                slots[h] = [-1] * num_joints
                parts[h] = 0
                total[h] = 0.0
                put(h, ja, p)
                put(h, jb, q)
                total[h] = peak_score[p] + peak_score[q] + c

    people = []
    xy = peaks.xy
    for h, row in slots.items():
        n, s = parts[h], total[h]
        if n < params.min_parts or s / n < params.min_person_score:
            continue
        ids = np.asarray(row, np.int64)
        kp = np.zeros((num_joints, 3), np.float32)
        have = ids >= 0
        kp[have, :2] = xy[ids[have]]
        kp[have, 2] = peaks.score[ids[have]]
        people.append(
            Person(keypoints=kp, score=float(1.0 - 1.0 / s), num_parts=int(n), mean_score=float(s / n), peak_ids=ids)
        )
    people.sort(key=lambda person: -person.score)
    return people
