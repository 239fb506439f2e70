"""The synthetic figure's 3-D body model: vector helpers, the keypoint-to-part table, pose families, facing,
the posed body (joints and parts) and its outfit."""

from __future__ import annotations

import math

import numpy as np

from bpnet_core.data.synthetic.raster import _HAIR, _SKIN, _jitter, _rand_color


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = _unit(axis)
    c, s = math.cos(angle), math.sin(angle)
    return v * c + _cross(axis, v) * s + axis * float(np.dot(axis, v)) * (1.0 - c)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _perp_part(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return v - axis * float(np.dot(v, axis))


# ------------------------------------------------------------------------------------------------ the body model
# keypoint name -> the parts it belongs to (a keypoint covered by any other, later-drawn part is occluded)
_JOINTS = {
    "nose": ("head",),
    "left_eye": ("head",),
    "right_eye": ("head",),
    "left_ear": ("head",),
    "right_ear": ("head",),
    "left_shoulder": ("upper_arm_l", "torso_upper"),
    "right_shoulder": ("upper_arm_r", "torso_upper"),
    "left_elbow": ("upper_arm_l", "forearm_l"),
    "right_elbow": ("upper_arm_r", "forearm_r"),
    "left_wrist": ("forearm_l", "hand_l"),
    "right_wrist": ("forearm_r", "hand_r"),
    "left_hip": ("torso_lower", "thigh_l"),
    "right_hip": ("torso_lower", "thigh_r"),
    "left_knee": ("thigh_l", "shin_l"),
    "right_knee": ("thigh_r", "shin_r"),
    "left_ankle": ("shin_l", "foot_l"),
    "right_ankle": ("shin_r", "foot_r"),
}
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")

_RING_COS = np.cos(np.linspace(0, 2 * math.pi, 10, endpoint=False))
_RING_SIN = np.sin(np.linspace(0, 2 * math.pi, 10, endpoint=False))

_POSES = ("stand", "walk", "run", "arms_up", "reach", "sit", "squat", "lie", "free")
_POSE_P = np.array([0.16, 0.2, 0.08, 0.11, 0.12, 0.1, 0.06, 0.07, 0.1])
#: Default facing: (p_front, p_back, spread in degrees); the rest face any direction (profiles).
_FACING = (0.5, 0.25, 30.0)


def _sample_pose(rng: np.random.Generator, pose_p: np.ndarray = _POSE_P) -> tuple[str, dict]:
    """Joint angles (radians) of one of the pose families (probabilities ``pose_p``), within joint limits."""
    r = math.radians

    def u(a: float, b: float) -> float:
        return r(rng.uniform(a, b))

    kind = _POSES[rng.choice(len(_POSES), p=pose_p)]
    p = {
        "lean": u(-4, 8),
        "side": u(-5, 5),
        "twist": u(-10, 10),
        "nod": u(-10, 15),
        "tilt": u(-10, 10),
        "head_yaw": u(-30, 30),
        "roll": u(-6, 6),
        "abd": [u(4, 20), u(4, 20)],
        "flex": [u(-12, 20), u(-12, 20)],
        "arm_twist": [u(-30, 20), u(-30, 20)],
        "elbow": [u(0, 35), u(0, 35)],
        "leg_flex": [u(-5, 10), u(-5, 10)],
        "leg_abd": [u(-2, 9), u(-2, 9)],
        "knee": [u(0, 12), u(0, 12)],
    }
    a = int(rng.integers(2))  # the "first" side for asymmetric poses
    b = 1 - a
    if kind == "walk" or kind == "run":
        big = kind == "run"
        p["leg_flex"][a] = u(30, 70) if big else u(12, 32)
        p["leg_flex"][b] = u(-35, -10) if big else u(-22, -5)
        p["knee"][a] = u(30, 90) if big else u(5, 25)
        p["knee"][b] = u(50, 110) if big else u(10, 45)
        p["flex"][a] = u(-50, -20) if big else u(-30, -5)
        p["flex"][b] = u(30, 70) if big else u(10, 35)
        p["elbow"] = [u(70, 110), u(70, 110)] if big else [u(10, 40), u(10, 40)]
        p["abd"] = [u(5, 20), u(5, 20)]
        if big:
            p["lean"] = u(8, 22)
    elif kind == "arms_up":
        sides = [a] if rng.random() < 0.4 else [0, 1]
        for s in sides:
            if rng.random() < 0.5:
                p["abd"][s], p["flex"][s] = u(70, 170), u(-10, 30)
            else:
                p["abd"][s], p["flex"][s] = u(5, 35), u(110, 175)
            p["elbow"][s] = u(0, 100)
    elif kind == "reach":
        p["abd"][a], p["flex"][a], p["elbow"][a] = u(0, 60), u(50, 110), u(0, 50)
        if rng.random() < 0.5:  # other hand on the hip
            p["abd"][b], p["flex"][b], p["elbow"][b], p["arm_twist"][b] = u(35, 50), u(-20, 0), u(90, 130), u(60, 90)
    elif kind == "sit":
        p["leg_flex"] = [u(70, 100), u(70, 100)]
        p["knee"] = [u(70, 110), u(70, 110)]
        p["leg_abd"] = [u(0, 20), u(0, 20)]
        p["lean"] = u(-10, 20)
        p["flex"] = [u(10, 50), u(10, 50)]
        p["elbow"] = [u(30, 90), u(30, 90)]
    elif kind == "squat":
        p["leg_flex"] = [u(90, 125), u(90, 125)]
        p["knee"] = [u(110, 150), u(110, 150)]
        p["leg_abd"] = [u(5, 30), u(5, 30)]
        p["lean"] = u(20, 45)
        p["flex"] = [u(30, 90), u(30, 90)]
        p["elbow"] = [u(0, 90), u(0, 90)]
    elif kind == "lie":
        p["roll"] = r(rng.choice([-1, 1]) * rng.uniform(70, 105))
        p["abd"] = [u(0, 90), u(0, 90)]
        p["knee"] = [u(0, 60), u(0, 60)]
        p["leg_flex"] = [u(-5, 40), u(-5, 40)]
    elif kind == "free":
        p.update(lean=u(-10, 35), side=u(-15, 15), twist=u(-25, 25), nod=u(-20, 30), head_yaw=u(-50, 50))
        p["abd"] = [u(-10, 170), u(-10, 170)]
        p["flex"] = [u(-50, 170), u(-50, 170)]
        p["elbow"] = [u(0, 145), u(0, 145)]
        p["arm_twist"] = [u(-60, 60), u(-60, 60)]
        p["leg_flex"] = [u(-30, 110), u(-30, 110)]
        p["leg_abd"] = [u(-10, 45), u(-10, 45)]
        p["knee"] = [u(0, 140), u(0, 140)]
    if kind != "lie" and rng.random() < 0.05:
        p["roll"] = u(-40, 40)
    return kind, p


def _sample_yaw(rng: np.random.Generator, facing: tuple[float, float, float] = _FACING) -> float:
    """Facing = (p_front, p_back, spread in degrees); default: 50 % towards the camera, 25 % away (± 30°), 25 % any
    direction (profiles)."""
    p_front, p_back, spread = facing
    t = rng.random()
    if t < p_front:
        return float(rng.normal(0.0, math.radians(spread)))
    if t < p_front + p_back:
        return float(math.pi + rng.normal(0.0, math.radians(spread)))
    return float(rng.uniform(-math.pi, math.pi))


def _body(rng: np.random.Generator, pose: dict) -> tuple[dict, list]:
    """A posed 3-D body in body units (height ~ 1; x = the figure's left, y = down, z = its front).

    Returns the joints (name -> (point, face normal or None)) and the parts
    (kind, name, material, geometry...).
    """

    def g(m: float, spread: float = 0.06) -> float:
        return m * rng.uniform(1 - spread, 1 + spread)

    child = rng.random() < 0.08
    head_k = 1.3 if child else 1.0
    limb_k = 0.9 if child else 1.0
    build = rng.uniform(0.85, 1.3)
    torso_len, sh_half, hip_half = g(0.30), g(0.115), g(0.085)
    upper_arm, forearm, hand = g(0.165 * limb_k), g(0.15 * limb_k), g(0.055)
    thigh, shin, foot = g(0.245 * limb_k), g(0.245 * limb_k), g(0.075)
    neck_len = g(0.095)
    head_r = g(0.056) * head_k
    head_rv = head_r * g(1.18, 0.05)

    lat0 = np.array([1.0, 0.0, 0.0])
    down0 = np.array([0.0, 1.0, 0.0])
    up0 = -down0
    fwd0 = np.array([0.0, 0.0, 1.0])
    side, lean = pose["side"], pose["lean"]
    up_t = _unit(math.sin(side) * lat0 + math.cos(side) * (math.cos(lean) * up0 + math.sin(lean) * fwd0))
    lat_t = _unit(_perp_part(lat0, up_t))
    fwd_t = _cross(up_t, lat_t)
    tw = pose["twist"]
    lat_t = math.cos(tw) * lat_t + math.sin(tw) * fwd_t
    fwd_t = _cross(up_t, lat_t)
    lat_w = _unit(lat0 + lat_t)  # waist: half of the twist
    fwd_w = _unit(_cross(_unit(up0 + up_t), lat_w))

    pelvis = np.zeros(3)
    chest_top = pelvis + up_t * torso_len
    neck_base = chest_top + up_t * 0.012
    shoulder = [chest_top - up_t * 0.015 + s * lat_t * sh_half for s in (1, -1)]
    hip = [pelvis + s * lat0 * hip_half + down0 * 0.01 for s in (1, -1)]

    nod, tilt, hy = pose["nod"], pose["tilt"], pose["head_yaw"]
    up_h = _unit(math.sin(tilt) * lat_t + math.cos(tilt) * (math.cos(nod) * up_t + math.sin(nod) * fwd_t))
    lat_h = _unit(_perp_part(lat_t, up_h))
    fwd_h = _cross(up_h, lat_h)
    lat_h = math.cos(hy) * lat_h + math.sin(hy) * fwd_h
    fwd_h = _cross(up_h, lat_h)
    head_c = neck_base + _unit(up_t + up_h) * neck_len + fwd_h * 0.008

    def head_point(x: float, y: float, z: float) -> tuple[np.ndarray, np.ndarray]:
        local = lat_h * x + up_h * y + fwd_h * z
        return head_c + local * (head_r / 0.056), _unit(local)

    joints: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "nose": head_point(0.0, -0.012, 0.05),
        "left_eye": head_point(0.022, 0.008, 0.042),
        "right_eye": head_point(-0.022, 0.008, 0.042),
        "left_ear": head_point(0.047, 0.0, -0.006),
        "right_ear": head_point(-0.047, 0.0, -0.006),
    }
    parts: list = []

    # torso: hulls of elliptical cross-sections
    def ring(c: np.ndarray, lat: np.ndarray, fwd: np.ndarray, rl: float, rf: float) -> np.ndarray:
        k = build**0.5
        return c + np.outer(_RING_COS * (rl * k), lat) + np.outer(_RING_SIN * (rf * k), fwd)

    waist = pelvis + up_t * (0.45 * torso_len)
    lower = np.concatenate(
        [
            ring(pelvis + down0 * 0.055, lat0, fwd0, 0.07, 0.055),
            ring(pelvis, lat0, fwd0, 0.1, 0.065),
            ring(waist, lat_w, fwd_w, 0.082, 0.055),
        ]
    )
    upper = np.concatenate(
        [
            ring(waist, lat_w, fwd_w, 0.082, 0.055),
            ring(pelvis + up_t * (0.75 * torso_len), lat_t, fwd_t, 0.1, 0.065),
            ring(chest_top - up_t * 0.01, lat_t, fwd_t, 0.105, 0.05),
        ]
    )
    parts.append(("hull", "torso_lower", "pants", lower, pelvis))
    parts.append(("hull", "torso_upper", "shirt", upper, pelvis + up_t * (0.7 * torso_len), fwd_t))
    parts.append(("cap", "neck", "skin", neck_base - up_t * 0.03, head_c, 0.027 * build**0.5, 0.025))
    parts.append(("head", "head", "skin", head_c, head_r, head_rv, up_h, lat_h, fwd_h))

    for i, s in enumerate((1, -1)):
        tag = "lr"[i]
        name = ("left_", "right_")[i]
        abd, flex = pose["abd"][i], pose["flex"][i]
        v_loc = np.array([s * math.sin(abd), math.cos(abd) * math.cos(flex), math.cos(abd) * math.sin(flex)])
        v = _unit(v_loc[0] * lat_t - v_loc[1] * up_t + v_loc[2] * fwd_t)
        elbow = shoulder[i] + v * upper_arm
        b_loc = np.array([0.0, -v_loc[2], v_loc[1]])
        bend = _perp_part(b_loc[0] * lat_t - b_loc[1] * up_t + b_loc[2] * fwd_t, v)
        if np.linalg.norm(bend) < 0.3:
            bend = _perp_part(fwd_t, v)
        bend = _rotate_about(_unit(bend), v, -s * pose["arm_twist"][i])
        e = pose["elbow"][i]
        fdir = _unit(math.cos(e) * v + math.sin(e) * bend)
        wrist = elbow + fdir * forearm
        joints[name + "shoulder"] = (shoulder[i], None)
        joints[name + "elbow"] = (elbow, None)
        joints[name + "wrist"] = (wrist, None)
        parts.append(("cap", "upper_arm_" + tag, "sleeve_upper", shoulder[i], elbow, 0.042 * build, 0.032 * build))
        parts.append(("cap", "forearm_" + tag, "sleeve_lower", elbow, wrist, 0.031 * build, 0.023 * build))
        hand_ends = wrist + fdir * 0.01, wrist + fdir * hand
        parts.append(("cap", "hand_" + tag, "skin", *hand_ends, 0.024 * build**0.5, 0.02 * build**0.5))

        lf, la = pose["leg_flex"][i], pose["leg_abd"][i]
        v_loc = np.array([s * math.sin(la), math.cos(la) * math.cos(lf), math.cos(la) * math.sin(lf)])
        v = _unit(v_loc[0] * lat0 + v_loc[1] * down0 + v_loc[2] * fwd0)
        knee = hip[i] + v * thigh
        bend = _perp_part(v_loc[2] * down0 - v_loc[1] * fwd0, v)
        if np.linalg.norm(bend) < 0.3:
            bend = _perp_part(-fwd0, v)
        bend = _unit(bend)
        k = pose["knee"][i]
        sdir = _unit(math.cos(k) * v + math.sin(k) * bend)
        ankle = knee + sdir * shin
        fdir = _unit(_perp_part(_unit(fwd0 + s * 0.3 * lat0), sdir) + 0.25 * sdir)
        joints[name + "hip"] = (hip[i], None)
        joints[name + "knee"] = (knee, None)
        joints[name + "ankle"] = (ankle, None)
        parts.append(("cap", "thigh_" + tag, "pants", hip[i], knee, 0.064 * build, 0.045 * build))
        parts.append(("cap", "shin_" + tag, "pants_lower", knee, ankle, 0.044 * build, 0.03 * build))
        foot_ends = ankle - fdir * 0.02 + sdir * 0.025, ankle + fdir * foot + sdir * 0.02
        parts.append(("cap", "foot_" + tag, "shoes", *foot_ends, 0.027 * build**0.5, 0.022 * build**0.5))
    return joints, parts


def _outfit(rng: np.random.Generator) -> dict:
    """Material name -> base BGR colour."""
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 12)
    shirt = _rand_color(rng)
    pants = _rand_color(rng, sat=(0.0, 0.7), val=(0.1, 0.8))
    sleeves = rng.choice(3, p=[0.45, 0.4, 0.15])  # long, short, none
    legs = rng.choice(2, p=[0.75, 0.25])  # long, shorts
    return {
        "skin": skin,
        "hair": _jitter(rng, _HAIR[rng.integers(len(_HAIR))], 10) if rng.random() > 0.07 else skin * 0.9,
        "shirt": shirt,
        "pants": pants,
        "shoes": _rand_color(rng, val=(0.05, 0.5)),
        "sleeve_upper": "skin" if sleeves == 2 else "shirt",
        "sleeve_lower": "shirt" if sleeves == 0 else "skin",
        "pants_lower": "pants" if legs == 0 else "skin",
        "print": _rand_color(rng, sat=(0.5, 1.0), val=(0.6, 1.0)) if rng.random() < 0.5 else None,
    }
