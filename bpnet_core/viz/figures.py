"""Composite pictures for the notebooks (one call per picture, so notebook cells stay short)."""

from __future__ import annotations

import cv2
import numpy as np

from bpnet_core.data.targets import render_labels
from bpnet_core.runners.rendered import Transform
from bpnet_core.skeleton import PoseConfig
from bpnet_core.viz.draw import draw_people, grid, overlay_map, overlay_mask, overlay_pafs


def label_panel(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    pose: PoseConfig,
    stride: int,
    sigma: float,
    mask: np.ndarray | None = None,
    heatmaps: np.ndarray | None = None,
    pafs: np.ndarray | None = None,
    paf_ortho_dist_thresh: float = 1.0,
) -> np.ndarray:
    """Four tiles: skeletons (+ ignored regions), all joint heatmaps, background channel, all PAFs.

    ``image_bgr`` is at network-input size; labels are rendered from ``keypoints`` unless given.
    """
    h, w = image_bgr.shape[:2]
    if heatmaps is None or pafs is None:
        heatmaps, pafs = render_labels(keypoints, pose, (h, w), stride, sigma, paf_ortho_dist_thresh)
    tiles = [
        overlay_mask(draw_people(image_bgr, keypoints, pose), mask),
        overlay_map(image_bgr, heatmaps[:, :, :-1].max(axis=2)),
        overlay_map(image_bgr, heatmaps[:, :, -1]),
        overlay_pafs(image_bgr, pafs),
    ]
    titles = ["keypoints + ignored (red)", f"{pose.num_joints} joint heatmaps", "background", f"{pose.num_limbs} PAFs"]
    return grid(tiles, cols=4, titles=titles)


def dataset_gallery(images: list[np.ndarray], keypoints: list[np.ndarray], pose: PoseConfig,
                    masks: list[np.ndarray | None] | None = None, cols: int = 4,
                    cell: int = 192) -> np.ndarray:  # fmt: skip
    """Images with skeletons drawn and loss-masked regions tinted red."""
    tiles = []
    for n, (img, kp) in enumerate(zip(images, keypoints)):
        tile = draw_people(img, kp, pose)
        tiles.append(overlay_mask(tile, masks[n]) if masks else tile)
    return grid(tiles, cols=cols, cell=(cell, cell))


def augmentation_gallery(loader, index: int = 0, n: int = 8, cols: int = 4, mode: str | None = None) -> np.ndarray:
    """``n`` augmented versions (epochs 0..n−1) of record ``index`` from a
    :class:`~bpnet_core.data.pipeline.SampleLoader`, each with its keypoints and the loss mask, optionally in another
    augmentation ``mode``."""
    old = loader.cfg.aug_mode
    if mode:
        loader.cfg.aug_mode = mode
    try:
        tiles = []
        for epoch in range(n):
            s = loader.sample(index, epoch)
            tile = overlay_mask(draw_people(s["image_uint8"], s["keypoints"], loader.pose), s["mask"][:, :, 0])
            tiles.append(tile)
    finally:
        loader.cfg.aug_mode = old
    return grid(tiles, cols=cols, titles=[mode or old] + [""] * (n - 1))


def records_gallery(loader, n: int = 8, cols: int = 4, cell: int = 192, masked_first: bool = True) -> np.ndarray:
    """Original images of ``n`` records with all labelled people drawn and loss-masked regions tinted red
    (records carrying a mask first)."""
    seen, order = set(), []
    for i, rec in enumerate(loader.records):  # one record per image (records repeat an image per main person)
        if rec["image_id"] not in seen:
            seen.add(rec["image_id"])
            order.append(i)
    if masked_first:
        order.sort(key=lambda i: not loader.records[i].get("mask_path"))
    images, kps, masks = [], [], []
    for i in order[:n]:
        img, mask, kp = loader.raw(i)
        images.append(img)
        kps.append(kp)
        masks.append(mask)
    return dataset_gallery(images, kps, loader.pose, masks, cols=cols, cell=cell)


def sample_panel(loader, index: int = 0, epoch: int = 0) -> np.ndarray:
    """:func:`label_panel` of one training sample exactly as the network sees it (augmented crop and labels)."""
    s = loader.sample(index, epoch)
    return label_panel(s["image_uint8"], s["keypoints"], loader.pose, loader.cfg.stride, loader.cfg.heatmap_sigma,
                       mask=s["mask"][:, :, 0], heatmaps=s["heatmaps"], pafs=s["pafs"])  # fmt: skip


def prediction_vs_truth(image_bgr: np.ndarray, predicted: np.ndarray, truth: np.ndarray, pose: PoseConfig,
                        scores: list[float] | None = None, cell: int = 320) -> np.ndarray:  # fmt: skip
    """Two tiles: ground truth (left) and decoded people with scores (right), on the original image."""
    h, w = image_bgr.shape[:2]
    size = (cell, int(round(cell * w / h)))
    left = draw_people(image_bgr, truth, pose, color_by="limb")
    right = draw_people(image_bgr, predicted, pose, scores=scores, color_by="person")
    return grid([left, right], cols=2, cell=size, titles=[f"truth: {len(truth)}", f"decoded: {len(predicted)}"])


def stage_outputs(predictor, image_bgr: np.ndarray, image_path=None) -> np.ndarray:
    """One row per available stage: all joint heatmaps, background, all PAFs, as the network outputs them for one
    image (``predictor``: a :class:`~bpnet_core.infer.Predictor`; its spec's input size and resize mode)."""
    pre = predictor.prepare(image_bgr)
    oy, ox, y1, x1 = pre.box
    base = cv2.resize(image_bgr, (x1 - ox, y1 - oy), interpolation=cv2.INTER_AREA)
    canvas = np.zeros(pre.batch.shape[1:], np.uint8)
    canvas[oy:y1, ox:x1] = base
    runner = predictor.runner
    tiles, titles = [], []
    for s in predictor.meta.available_stages:
        if getattr(runner, "needs_transforms", False):
            heat, paf = runner.predict_with_transforms(pre.batch, [Transform(str(image_path or ""), pre.matrix)], s)
        else:
            heat, paf = runner.predict(pre.batch, stage=s)
        tiles += [overlay_map(canvas, heat[0][:, :, :-1].max(axis=2)), overlay_map(canvas, heat[0][:, :, -1]),
                  overlay_pafs(canvas, paf[0])]  # fmt: skip
        titles += [f"stage {s}: joints", f"stage {s}: background", f"stage {s}: PAFs"]
    return grid(tiles, cols=3, titles=titles)


def stage_predictions(runner, loader, index: int = 0) -> np.ndarray:
    """Labels next to each stage's predictions for one (un-augmented) sample: rows = labels, stage 1, …, stage S;
    columns = all joint heatmaps, background, all PAFs."""
    saved = loader.augment
    loader.augment = False
    try:
        s = loader.sample(index, 0)
    finally:
        loader.augment = saved
    base = s["image_uint8"]
    rows = [("labels", s["heatmaps"], s["pafs"])]
    for t in runner.meta.available_stages:
        heat, paf = runner.predict(s["image"][None], stage=t)
        rows.append((f"stage {t}", heat[0], paf[0]))
    tiles, titles = [], []
    for name, heat, paf in rows:
        tiles += [overlay_map(base, heat[:, :, :-1].max(axis=2)), overlay_map(base, heat[:, :, -1]),
                  overlay_pafs(base, paf)]  # fmt: skip
        titles += [f"{name}: joints", f"{name}: background", f"{name}: PAFs"]
    return grid(tiles, cols=3, titles=titles)
