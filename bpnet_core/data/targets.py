"""Label maps for BodyPoseNet: Gaussian joint heatmaps and Part Affinity Fields. NumPy only (no TensorFlow).

Conventions (shared with the decoder, pinned by tests):

* ``keypoints``: float array (P, J, 3) of x, y in *input* pixels and a flag; a joint with flag <= 0 is absent.
* The label grid has ``(H // stride, W // stride)`` cells; cell (i, j) is centred on input pixel
  ``(j·stride + (stride − 1)/2, i·stride + (stride − 1)/2)``.
* Heatmap of joint j = max over people of ``exp(−d²/2σ²)`` (σ in input pixels) at cell centres; values below
  ``min_value`` are zeroed (TAO); the last channel is the background ``clip(1 − max_j heat_j, 0, 1)``.
* PAF of limb k (channels 2k, 2k+1) = the unit vector from joint ``a`` to joint ``b`` at every cell whose centre is
  within ``paf_ortho_dist_thresh × stride`` input pixels of the limb segment; where several people's limbs overlap,
  their vectors are averaged.
"""

from __future__ import annotations

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.skeleton import PoseConfig


def cell_centers(num_cells: int, stride: int) -> np.ndarray:
    """Input-pixel coordinate of the centre of each of ``num_cells`` label cells."""
    return np.arange(num_cells, dtype=np.float32) * stride + (stride - 1) / 2.0


def _check_keypoints(keypoints: np.ndarray, pose: PoseConfig) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.size == 0:
        return np.zeros((0, pose.num_joints, 3), np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (pose.num_joints, 3):
        raise BpnetError(
            f"keypoints have shape {kp.shape}; expected (people, {pose.num_joints}, 3) for pose config {pose.name}"
        )
    return kp


def render_heatmaps(
    keypoints: np.ndarray,
    pose: PoseConfig,
    grid_shape: tuple[int, int],
    stride: int,
    sigma: float,
    min_value: float = 0.001,
) -> np.ndarray:
    """Joint heatmaps plus background, float32 (Hg, Wg, J + 1)."""
    kp = _check_keypoints(keypoints, pose)
    hg, wg = int(grid_shape[0]), int(grid_shape[1])
    out = np.zeros((hg, wg, pose.num_heatmap_channels), np.float32)
    xs, ys = cell_centers(wg, stride), cell_centers(hg, stride)
    inv = 1.0 / (2.0 * float(sigma) ** 2)
    for j in range(pose.num_joints):
        pts = kp[:, j, :]
        pts = pts[pts[:, 2] > 0]
        if len(pts) == 0:
            continue
        gx = np.exp(-((xs[None, :] - pts[:, 0:1]) ** 2) * inv)  # (P, Wg)
        gy = np.exp(-((ys[None, :] - pts[:, 1:2]) ** 2) * inv)  # (P, Hg)
        heat = np.einsum("ph,pw->phw", gy, gx).max(axis=0)  # separable Gaussian, max over people
        heat[heat < min_value] = 0.0
        out[:, :, j] = heat
    out[:, :, -1] = np.clip(1.0 - out[:, :, :-1].max(axis=2), 0.0, 1.0)
    return out


def render_pafs(
    keypoints: np.ndarray,
    pose: PoseConfig,
    grid_shape: tuple[int, int],
    stride: int,
    paf_ortho_dist_thresh: float = 1.0,
) -> np.ndarray:
    """Part Affinity Fields, float32 (Hg, Wg, 2·L); limb k in channels (2k, 2k+1)."""
    kp = _check_keypoints(keypoints, pose)
    hg, wg = int(grid_shape[0]), int(grid_shape[1])
    out = np.zeros((hg, wg, pose.num_paf_channels), np.float32)
    if len(kp) == 0:
        return out
    limbs = np.asarray(pose.limbs, np.int64).reshape(-1, 2)
    ok = (kp[:, limbs[:, 0], 2] > 0) & (kp[:, limbs[:, 1], 2] > 0)  # (P, L)
    pa, pb = kp[:, limbs[:, 0], :2][ok], kp[:, limbs[:, 1], :2][ok]  # (S, 2): every drawable (person, limb) segment
    limb_of = np.broadcast_to(np.arange(len(limbs)), ok.shape)[ok]
    vec = pb - pa
    length = np.linalg.norm(vec, axis=1)
    keep = length > 1e-6
    if not keep.any():
        return out
    seg = (pa[keep], (vec[keep] / length[keep, None]).astype(np.float32), length[keep], limb_of[keep])
    thresh = float(paf_ortho_dist_thresh) * stride
    # small grids (the demo's 16x16): all segments at once over the whole grid; large grids: one window per segment
    fill = _pafs_dense if len(seg[0]) * hg * wg <= _DENSE_PAF_CELLS else _pafs_windowed
    sum_xy, count = fill(seg, len(limbs), hg, wg, stride, thresh)
    mean = np.divide(sum_xy, count[..., None], out=np.zeros_like(sum_xy), where=count[..., None] > 0)
    for k in np.unique(seg[3]):
        cx, cy = pose.paf_channels(int(k))
        out[:, :, cx] = mean[k, :, :, 0]
        out[:, :, cy] = mean[k, :, :, 1]
    return out


#: Segments × cells up to which :func:`render_pafs` evaluates every segment on the whole grid at once.
_DENSE_PAF_CELLS = 32768


def _inside(dx, dy, unit_x, unit_y, length, thresh: float):
    """Cells whose centre (offset dx, dy from the segment start) lies within ``thresh`` of the segment."""
    along = np.clip(dx * unit_x + dy * unit_y, 0.0, length)
    return (dx - along * unit_x) ** 2 + (dy - along * unit_y) ** 2 <= thresh * thresh


def _pafs_dense(seg, num_limbs: int, hg: int, wg: int, stride: int, thresh: float):
    """Per limb: the sum of its people's unit vectors (L, Hg, Wg, 2) and their count (L, Hg, Wg); vectorised."""
    pa, unit, length, limb_of = seg
    dx = cell_centers(wg, stride)[None, None, :] - pa[:, 0, None, None]  # (S, 1, Wg)
    dy = cell_centers(hg, stride)[None, :, None] - pa[:, 1, None, None]  # (S, Hg, 1)
    inside = _inside(dx, dy, unit[:, 0, None, None], unit[:, 1, None, None], length[:, None, None], thresh)
    inside = inside.astype(np.float32).reshape(len(pa), -1)  # (S, Hg·Wg)
    onehot = (limb_of[None, :] == np.arange(num_limbs)[:, None]).astype(np.float32)  # (L, S)
    count = onehot @ inside
    sum_xy = np.stack([onehot @ (inside * unit[:, 0, None]), onehot @ (inside * unit[:, 1, None])], axis=-1)
    return sum_xy.reshape(num_limbs, hg, wg, 2), count.reshape(num_limbs, hg, wg)


def _pafs_windowed(seg, num_limbs: int, hg: int, wg: int, stride: int, thresh: float):
    """As :func:`_pafs_dense`, one segment at a time over the cells of its bounding box ± ``thresh``."""
    pa, unit, length, limb_of = seg
    xs, ys = cell_centers(wg, stride), cell_centers(hg, stride)
    sum_xy = np.zeros((num_limbs, hg, wg, 2), np.float32)
    count = np.zeros((num_limbs, hg, wg), np.float32)
    half = (stride - 1) / 2
    for p in range(len(pa)):
        (x0, y0), (x1, y1) = pa[p], pa[p] + unit[p] * length[p]
        c0 = max(0, int(np.floor((min(x0, x1) - thresh - half) / stride)))
        c1 = min(wg, int(np.ceil((max(x0, x1) + thresh - half) / stride)) + 1)
        r0 = max(0, int(np.floor((min(y0, y1) - thresh - half) / stride)))
        r1 = min(hg, int(np.ceil((max(y0, y1) + thresh - half) / stride)) + 1)
        if c0 >= c1 or r0 >= r1:
            continue
        dx, dy = xs[None, c0:c1] - x0, ys[r0:r1, None] - y0
        inside = _inside(dx, dy, unit[p, 0], unit[p, 1], length[p], thresh)
        k = limb_of[p]
        sum_xy[k, r0:r1, c0:c1][inside] += unit[p]
        count[k, r0:r1, c0:c1][inside] += 1.0
    return sum_xy, count


def render_labels(
    keypoints: np.ndarray,
    pose: PoseConfig,
    input_shape: tuple[int, int],
    stride: int,
    heatmap_sigma: float,
    paf_ortho_dist_thresh: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (Hg, Wg, J+1) and PAFs (Hg, Wg, 2L) for an input of ``input_shape`` = (H, W) pixels."""
    h, w = int(input_shape[0]), int(input_shape[1])
    if h <= 0 or w <= 0 or h % stride or w % stride:
        raise BpnetError(f"input shape {h}x{w} must be positive multiples of the stride {stride}")
    grid = (h // stride, w // stride)
    return (
        render_heatmaps(keypoints, pose, grid, stride, heatmap_sigma),
        render_pafs(keypoints, pose, grid, stride, paf_ortho_dist_thresh),
    )


def resize_mask(mask: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Resize an input-resolution mask (uint8 0/255 or float 0/1) to the label grid as float32 in [0, 1]."""
    import cv2

    m = np.asarray(mask)
    m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)
    if m.ndim == 3:
        m = m[:, :, 0]
    return cv2.resize(m, (int(grid_shape[1]), int(grid_shape[0])), interpolation=cv2.INTER_AREA)
