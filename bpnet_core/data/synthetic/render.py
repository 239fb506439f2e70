"""The synthetic figure renderer: projects a posed body, draws it part by part (back to front) with textures,
shading and face details, labels its keypoints (visibility, self-occlusion), and blends it into a canvas."""

from __future__ import annotations

import math

import cv2
import numpy as np

from bpnet_core.data.synthetic.body import _FACING, _JOINTS, _POSE_P, _body, _outfit, _sample_pose, _sample_yaw
from bpnet_core.data.synthetic.raster import _ONE, _SHIFT, _draw_capsule, _draw_ellipse, _fill_texture, _fx, _pt


def _render_figure(
    rng: np.random.Generator,
    height_px: float,
    anchor: tuple[float, float],
    H: int,
    W: int,
    pose: dict | None = None,
    yaw: float | None = None,
    cfg: dict | None = None,
) -> dict | None:
    """Project and draw one figure (pose families and facing from the preset ``cfg``). Returns its crop (colour,
    alpha, part labels) and keypoints, or None if the figure would fall outside the image."""
    cfg = cfg or {}
    if pose is None:
        _, pose = _sample_pose(rng, cfg.get("pose_p", _POSE_P))
    yaw = _sample_yaw(rng, cfg.get("facing", _FACING)) if yaw is None else yaw
    joints, parts = _body(rng, pose)
    outfit = _outfit(rng)

    cy, sy = math.cos(yaw), math.sin(yaw)
    rot_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    cr, sr = math.cos(pose["roll"]), math.sin(pose["roll"])
    rot_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rot = rot_roll @ rot_yaw

    # the body's 2-D extent (at scale 1) to place it: the anchor is the centre of its extent
    pts = np.array(
        [j[0] for j in joints.values()]
        + [p[3] for p in parts if p[0] == "cap"]
        + [p[4] for p in parts if p[0] == "cap"]
    )
    proj = pts @ rot.T
    lo, hi = proj[:, :2].min(0), proj[:, :2].max(0)
    scale = height_px
    offset = np.array(anchor, np.float64) - scale * (lo + hi) / 2

    def P(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p)
        if p.ndim == 2:
            return (p @ rot[:2].T) * scale + offset
        return (rot[:2] @ p) * scale + offset

    def Z(p: np.ndarray) -> float:
        return float((rot @ p)[2])

    # bounds of the crop
    margin = 0.12 * scale + 3
    x0 = int(math.floor(scale * lo[0] + offset[0] - margin))
    y0 = int(math.floor(scale * lo[1] + offset[1] - margin))
    x1 = int(math.ceil(scale * hi[0] + offset[0] + margin))
    y1 = int(math.ceil(scale * hi[1] + offset[1] + margin))
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return None
    org = np.array([cx0, cy0], np.float64)
    h, w = cy1 - cy0, cx1 - cx0

    # draw order: far parts first; the torso and head are treated as a little further back than their centre so
    # that limbs at the same depth (arms hanging at the sides) are drawn over their edges
    keyed = []
    for part in parts:
        kind, name = part[0], part[1]
        if kind == "hull":
            key = Z(part[4]) - 0.035
        elif kind == "head":
            key = Z(part[3]) - 0.02
        elif name == "neck":
            key = -1e9  # replaced below
        else:
            key = (Z(part[3]) + Z(part[4])) / 2
            if name.startswith(("hand", "foot")):
                key += 0.002
        keyed.append([key, part])
    head_key = next(k for k, p in keyed if p[0] == "head")
    torso_key = min(k for k, p in keyed if p[0] == "hull")
    for item in keyed:
        if item[1][1] == "neck":
            item[0] = min(head_key, torso_key) - 0.001
    keyed.sort(key=lambda kp: kp[0])

    label = np.zeros((h, w), np.uint8)
    part_ids: dict[str, list[int]] = {}
    materials = [None]
    head_info = None
    for _, part in keyed:
        kind, name, mat = part[0], part[1], part[2]
        mat = outfit[mat] if isinstance(outfit.get(mat), str) else mat
        pid = len(materials)
        materials.append(mat)
        part_ids[name] = [pid]
        if kind == "cap":
            _draw_capsule(label, P(part[3]) - org, P(part[4]) - org, part[5] * scale, part[6] * scale, pid)
        elif kind == "hull":
            poly = P(part[3]) - org
            hull = cv2.convexHull(_fx(poly))
            cv2.fillConvexPoly(label, hull, pid, cv2.LINE_8, _SHIFT)
        else:  # head + hair
            _, _, _, c, r, rv, up_h, lat_h, fwd_h = part
            c2 = P(c) - org
            up2 = (rot @ up_h)[:2]
            ang = math.degrees(math.atan2(up2[1], up2[0])) + 90.0
            rv_eff = r + (rv - r) * min(1.0, float(np.linalg.norm(up2)))
            _draw_ellipse(label, c2, r * scale, rv_eff * scale, ang, pid)
            head_mask = label == pid
            hair_id = len(materials)
            materials.append("hair")
            part_ids[name].append(hair_id)
            fwd3 = rot @ fwd_h
            fz = float(fwd3[2])
            face = np.zeros_like(label)
            if fz > -0.3:
                down2 = -up2
                fc = c2 + fwd3[:2] * (0.42 * r * scale) + down2 * (0.22 * r * scale)
                k = 0.55 + 0.45 * max(0.0, fz)
                _draw_ellipse(face, fc, 0.8 * r * scale * k, 0.85 * rv_eff * scale, ang, 1)
            label[head_mask & (face == 0)] = hair_id
            head_info = (c2, r * scale, fwd3, rot @ lat_h, up2)

    # colours: one texture per material over the crop
    mat_names = sorted({m for m in materials[1:]})
    mat_index = {m: i + 1 for i, m in enumerate(mat_names)}
    lut = np.zeros(256, np.uint8)
    for pid, m in enumerate(materials):
        if m is not None:
            lut[pid] = mat_index[m]
    matmap = lut[label]
    color = np.zeros((h, w, 3), np.float32)
    period = max(2.5, 0.04 * scale)
    for m in mat_names:
        sel = matmap == mat_index[m]
        if m in ("skin", "hair"):
            color[sel] = outfit[m]
        else:
            _fill_texture(rng, color, sel, outfit[m], period)

    mask = label > 0
    # chest print on the front of the shirt
    if outfit["print"] is not None:
        tid = part_ids["torso_upper"][0]
        torso = next(p for p in parts if p[1] == "torso_upper")
        if float((rot @ torso[5])[2]) > 0.2:
            chest = torso[4]
            c2 = P(chest) - org
            pm = np.zeros_like(label)
            rr = 0.035 * scale
            if rng.random() < 0.5:
                _draw_ellipse(pm, c2, rr, rr, 0, 1)
            else:
                _draw_ellipse(pm, c2, rr * 1.4, rr * 0.6, math.degrees(pose["roll"]), 1)
            sel = (pm > 0) & (label == tid)
            color[sel] = outfit["print"]

    # face details
    if head_info is not None:
        c2, r_px, fwd3, lat3, up2 = head_info
        head_ids = set(part_ids["head"])
        if r_px >= 3.5 and fwd3[2] > 0.15:
            er = max(0.6, 0.12 * r_px)
            for nm in ("left_eye", "right_eye"):
                p3, normal = joints[nm]
                if (rot @ normal)[2] > 0.15:
                    e2 = P(p3) - org
                    xi, yi = int(round(e2[0])), int(round(e2[1]))
                    if 0 <= xi < w and 0 <= yi < h and label[yi, xi] in head_ids:
                        cv2.circle(color, _pt(e2), int(round(er * _ONE)), (25, 25, 30), -1, cv2.LINE_AA, _SHIFT)
            if r_px >= 7 and fwd3[2] > 0.4:
                m2 = c2 + fwd3[:2] * 0.6 * r_px - up2 * 0.45 * r_px
                d = lat3[:2]
                a, b = m2 - d * 0.25 * r_px, m2 + d * 0.25 * r_px
                cv2.line(color, _pt(a), _pt(b), tuple(float(v) for v in outfit["skin"] * 0.55), 1, cv2.LINE_AA, _SHIFT)

    # shading: darker towards each part's outline, so that limbs over the torso stay visible
    edge = np.zeros_like(mask)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:-1, :] |= label[1:, :] != label[:-1, :]
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    limb_px = max(1.0, 0.035 * scale)
    shade = 0.62 + 0.38 * np.sqrt(np.clip(dist / limb_px, 0.0, 1.0))
    light = rng.uniform(0.85, 1.15)
    color *= (shade * light)[..., None]
    np.clip(color, 0, 255, out=color)

    # keypoints: image position, labelled-ness and self-occlusion
    kps = {}
    for nm, owners in _JOINTS.items():
        p3, normal = joints[nm]
        p2 = P(p3)
        labelled = True
        if normal is not None and (rot @ normal)[2] < -0.25:
            labelled = False  # far side of the head
        own = [pid for o in owners for pid in part_ids[o]]
        q = p2 - org
        xi, yi = int(round(q[0])), int(round(q[1]))
        self_occ = False
        if 0 <= xi < w and 0 <= yi < h:
            lab = int(label[yi, xi])
            self_occ = lab != 0 and lab not in own and lab > max(own)
        kps[nm] = (float(p2[0]), float(p2[1]), labelled, self_occ)

    alpha = mask.astype(np.float32)
    if scale > 24:
        alpha = alpha * cv2.GaussianBlur(alpha, (3, 3), 0.7)
    return {"x0": cx0, "y0": cy0, "color": color, "alpha": alpha, "mask": mask, "keypoints": kps}


def _composite(canvas: np.ndarray, fig: dict) -> np.ndarray:
    """Blend a rendered figure into the canvas; return its full-image mask."""
    x0, y0 = fig["x0"], fig["y0"]
    h, w = fig["mask"].shape
    region = canvas[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    a = fig["alpha"][..., None]
    canvas[y0 : y0 + h, x0 : x0 + w] = np.clip(region * (1 - a) + fig["color"] * a + 0.5, 0, 255).astype(np.uint8)
    full = np.zeros(canvas.shape[:2], bool)
    full[y0 : y0 + h, x0 : x0 + w] = fig["mask"]
    return full
