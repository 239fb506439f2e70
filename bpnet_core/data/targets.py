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
    xs, ys = cell_centers(wg, stride), cell_centers(hg, stride)
    px, py = np.meshgrid(xs, ys)  # (Hg, Wg)
    thresh = float(paf_ortho_dist_thresh) * stride
    for k, (a, b) in enumerate(pose.limbs):
        ok = (kp[:, a, 2] > 0) & (kp[:, b, 2] > 0)
        if not ok.any():
            continue
        pa, pb = kp[ok, a, :2], kp[ok, b, :2]
        vec = pb - pa
        length = np.linalg.norm(vec, axis=1)
        keep = length > 1e-6
        if not keep.any():
            continue
        pa, vec, length = pa[keep], vec[keep], length[keep]
        unit = vec / length[:, None]  # (P, 2)
        acc = np.zeros((hg, wg, 2), np.float32)
        count = np.zeros((hg, wg), np.float32)
        for p in range(len(pa)):
            # only cells in the limb's bounding box ± thresh can be within reach of the segment
            x0, y0 = pa[p]
            x1, y1 = pa[p] + vec[p]
            c0 = max(0, int(np.floor((min(x0, x1) - thresh - (stride - 1) / 2) / stride)))
            c1 = min(wg, int(np.ceil((max(x0, x1) + thresh - (stride - 1) / 2) / stride)) + 1)
            r0 = max(0, int(np.floor((min(y0, y1) - thresh - (stride - 1) / 2) / stride)))
            r1 = min(hg, int(np.ceil((max(y0, y1) + thresh - (stride - 1) / 2) / stride)) + 1)
            if c0 >= c1 or r0 >= r1:
                continue
            dx = px[r0:r1, c0:c1] - x0
            dy = py[r0:r1, c0:c1] - y0
            along = np.clip(dx * unit[p, 0] + dy * unit[p, 1], 0.0, length[p])
            dist2 = (dx - along * unit[p, 0]) ** 2 + (dy - along * unit[p, 1]) ** 2
            inside = dist2 <= thresh * thresh
            acc[r0:r1, c0:c1][inside] += unit[p]
            count[r0:r1, c0:c1][inside] += 1.0
        nz = count > 0
        acc[nz] /= count[nz][:, None]
        cx, cy = pose.paf_channels(k)
        out[:, :, cx] = acc[:, :, 0]
        out[:, :, cy] = acc[:, :, 1]
    return out


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
