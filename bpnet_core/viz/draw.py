"""Drawing: ndarray in, ndarray out (uint8 BGR), plus PNG bytes for widgets. OpenCV only; no matplotlib needed.

Every function takes the :class:`~bpnet_core.skeleton.PoseConfig`, so custom skeletons draw with no code change.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from bpnet_core.skeleton import PoseConfig


def person_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct BGR colours (golden-ratio hues)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def draw_people(
    image: np.ndarray,
    people_keypoints: np.ndarray | list,
    pose: PoseConfig,
    scores: list[float] | None = None,
    color_by: str = "limb",
    thickness: int | None = None,
    min_conf: float = 0.0,
) -> np.ndarray:
    """Draw skeletons on a copy of ``image``.

    ``people_keypoints``: (P, J, 3) x, y, confidence/flag (<= ``min_conf`` = absent) in ``image`` pixels, or a list
    of objects with ``.keypoints``. ``color_by``: ``"limb"`` (one colour per limb, OpenPose style) or ``"person"``.
    """
    img = np.ascontiguousarray(image.copy())
    if len(people_keypoints) and hasattr(people_keypoints[0], "keypoints"):
        if scores is None:
            scores = [float(p.score) for p in people_keypoints]
        people_keypoints = np.stack([p.keypoints for p in people_keypoints])
    kps = np.asarray(people_keypoints, np.float32).reshape(-1, pose.num_joints, 3)
    t = thickness or max(1, int(round(min(img.shape[:2]) / 160)))
    limb_colors = pose.limb_colors()
    pcolors = person_colors(len(kps))
    for p, kp in enumerate(kps):
        for k, (a, b) in enumerate(pose.limbs):
            if kp[a, 2] > min_conf and kp[b, 2] > min_conf:
                color = limb_colors[k] if color_by == "limb" else pcolors[p]
                cv2.line(img, (int(round(kp[a, 0])), int(round(kp[a, 1]))),
                         (int(round(kp[b, 0])), int(round(kp[b, 1]))), color, t + 1, cv2.LINE_AA)  # fmt: skip
        for j in range(pose.num_joints):
            if kp[j, 2] > min_conf:
                c = (int(round(kp[j, 0])), int(round(kp[j, 1])))
                cv2.circle(img, c, t + 2, pcolors[p] if color_by == "person" else (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(img, c, t + 2, (0, 0, 0), 1, cv2.LINE_AA)
        if scores is not None and p < len(scores):
            present = kp[kp[:, 2] > min_conf]
            if len(present):
                x, y = int(present[:, 0].min()), int(max(10, present[:, 1].min() - 4))
                put_label(img, f"{scores[p]:.2f}", (x, y), pcolors[p])
    return img


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per track id (golden-ratio hues); grey for -1 (no id)."""
    if track_id < 0:
        return (160, 160, 160)
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.8, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def draw_tracks(image: np.ndarray, people_keypoints: np.ndarray, track_ids: list[int], pose: PoseConfig,
                thickness: int | None = None) -> np.ndarray:  # fmt: skip
    """Draw skeletons coloured by track id, each labelled with its id (``-1``: grey, no label)."""
    img = np.ascontiguousarray(image.copy())
    kps = np.asarray(people_keypoints, np.float32).reshape(-1, pose.num_joints, 3)
    t = thickness or max(1, int(round(min(img.shape[:2]) / 160)))
    for kp, tid in zip(kps, track_ids):
        color = track_color(int(tid))
        for a, b in pose.limbs:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                cv2.line(img, (int(round(kp[a, 0])), int(round(kp[a, 1]))),
                         (int(round(kp[b, 0])), int(round(kp[b, 1]))), color, t + 1, cv2.LINE_AA)  # fmt: skip
        present = kp[kp[:, 2] > 0]
        for x, y, _ in present:
            cv2.circle(img, (int(round(x)), int(round(y))), t + 1, color, -1, cv2.LINE_AA)
        if len(present) and tid >= 0:
            x, y = int(present[:, 0].min()), int(max(10, present[:, 1].min() - 4))
            put_label(img, str(int(tid)), (x, y), color)
    return img


def put_label(
    img: np.ndarray, text: str, org: tuple[int, int], color=(255, 255, 255), scale: float | None = None
) -> None:
    """Text on a dark box, readable on any background (in place)."""
    s = scale or max(0.35, min(img.shape[:2]) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, s, color, 1, cv2.LINE_AA)


def colorize(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A float map → BGR colour image."""
    v = np.clip((np.asarray(values, np.float32) - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    return cv2.applyColorMap((v * 255).astype(np.uint8), colormap)


def overlay_map(
    image: np.ndarray, values: np.ndarray, alpha: float = 0.55, vmin: float = 0.0, vmax: float = 1.0
) -> np.ndarray:
    """Blend a (low-resolution) map over ``image``, resized to the image (heatmaps, masks)."""
    h, w = image.shape[:2]
    up = cv2.resize(np.asarray(values, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    col = colorize(up, vmin, vmax)
    weight = (alpha * np.clip((up - vmin) / max(vmax - vmin, 1e-9), 0, 1))[:, :, None]
    return (image.astype(np.float32) * (1 - weight) + col.astype(np.float32) * weight).astype(np.uint8)


def overlay_mask(image: np.ndarray, valid_mask: np.ndarray | None, color=(0, 0, 255), alpha: float = 0.5) -> np.ndarray:
    """Tint the pixels the loss ignores (mask == 0) in ``color``."""
    if valid_mask is None:
        return image.copy()
    h, w = image.shape[:2]
    m = cv2.resize(np.asarray(valid_mask, np.float32) / (255.0 if np.asarray(valid_mask).dtype == np.uint8 else 1.0),
                   (w, h), interpolation=cv2.INTER_NEAREST)  # fmt: skip
    ignored = (1.0 - np.clip(m, 0, 1))[:, :, None] * alpha
    return (image.astype(np.float32) * (1 - ignored) + np.array(color, np.float32) * ignored).astype(np.uint8)


def paf_to_color(paf_xy: np.ndarray) -> np.ndarray:
    """A 2-channel vector field (h, w, 2) → BGR image: hue = direction, brightness = magnitude."""
    x, y = paf_xy[:, :, 0], paf_xy[:, :, 1]
    mag = np.clip(np.hypot(x, y), 0, 1)
    ang = (np.degrees(np.arctan2(y, x)) % 360) / 2  # OpenCV hue is 0..180
    hsv = np.stack([ang, np.full_like(ang, 255), mag * 255], axis=2).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def overlay_pafs(image: np.ndarray, pafs: np.ndarray, limbs: list[int] | None = None, alpha: float = 0.8) -> np.ndarray:
    """Blend colour-coded PAFs (all limbs summed, or ``limbs``) over ``image``."""
    h, w = image.shape[:2]
    idx = range(pafs.shape[2] // 2) if limbs is None else limbs
    field = np.zeros(pafs.shape[:2] + (2,), np.float32)
    for k in idx:
        field += pafs[:, :, 2 * k : 2 * k + 2]
    col = cv2.resize(paf_to_color(field), (w, h), interpolation=cv2.INTER_NEAREST)
    mag = cv2.resize(np.clip(np.hypot(field[:, :, 0], field[:, :, 1]), 0, 1), (w, h), interpolation=cv2.INTER_NEAREST)
    weight = (alpha * mag)[:, :, None]
    return (image.astype(np.float32) * (1 - weight) + col.astype(np.float32) * weight).astype(np.uint8)


def draw_paf_arrows(image: np.ndarray, pafs: np.ndarray, limb: int, stride: int, min_mag: float = 0.2,
                    color=(0, 255, 255)) -> np.ndarray:  # fmt: skip
    """Arrows for one limb's PAF at every cell whose vector is longer than ``min_mag`` (image at input size)."""
    img = image.copy()
    fx, fy = pafs[:, :, 2 * limb], pafs[:, :, 2 * limb + 1]
    for i, j in zip(*np.nonzero(np.hypot(fx, fy) > min_mag)):
        cx, cy = j * stride + (stride - 1) / 2, i * stride + (stride - 1) / 2
        tip = (int(round(cx + fx[i, j] * stride * 0.8)), int(round(cy + fy[i, j] * stride * 0.8)))
        cv2.arrowedLine(img, (int(round(cx)), int(round(cy))), tip, color, 1, cv2.LINE_AA, tipLength=0.35)
    return img


def grid(images: list[np.ndarray], cols: int = 4, cell: tuple[int, int] | None = None, titles: list[str] | None = None,
         pad: int = 4) -> np.ndarray:  # fmt: skip
    """Tile images (resized to a common ``cell`` = (h, w)) into one BGR picture, optional titles."""
    if not images:
        return np.zeros((1, 1, 3), np.uint8)
    ch, cw = cell or images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * (ch + pad) + pad, cols * (cw + pad) + pad, 3), 255, np.uint8)
    for n, im in enumerate(images):
        im = im if im.ndim == 3 else cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
        tile = cv2.resize(im, (cw, ch), interpolation=cv2.INTER_AREA)
        if titles and n < len(titles):
            put_label(tile, titles[n], (4, 14))
        r, c = divmod(n, cols)
        out[pad + r * (ch + pad) : pad + r * (ch + pad) + ch, pad + c * (cw + pad) : pad + c * (cw + pad) + cw] = tile
    return out


def to_png(image_bgr: np.ndarray) -> bytes:
    """PNG bytes of a BGR image (for ``ipywidgets.Image`` and files)."""
    ok, buf = cv2.imencode(".png", image_bgr)
    return buf.tobytes()


def to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """BGR → RGB (for matplotlib's ``imshow``)."""
    return np.ascontiguousarray(image_bgr[:, :, ::-1])


def show(image_bgr: np.ndarray, title: str | None = None, width: float = 10.0):
    """A BGR picture as a matplotlib Figure (matplotlib imported lazily), closed in pyplot and not shown here: a
    notebook cell shows it as its last expression, or with ``display(show(...))`` inside a loop."""
    import matplotlib.pyplot as plt

    h, w = image_bgr.shape[:2]
    fig, ax = plt.subplots(figsize=(width, width * h / w))
    ax.imshow(to_rgb(image_bgr))
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)  # out of pyplot: shown once, by whoever displays the returned figure
    return fig
