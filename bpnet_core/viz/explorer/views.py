"""The explorer's pictures and tables: the people view, the map view (a joint's heatmap, a limb's PAF as colour or
arrows, the decoder's candidate connections) and the people and timing HTML, drawn from the state an
:class:`~bpnet_core.viz.explorer.app.Explorer` holds (its image, cached maps, decoder output and controls)."""

from __future__ import annotations

import html

import cv2
import numpy as np

from bpnet_core.decode import ACCEPTED, REJECTED, UNMATCHED
from bpnet_core.preprocess import to_photo
from bpnet_core.viz.draw import (
    draw_paf_arrows,
    draw_people,
    overlay_map,
    overlay_pafs,
    person_colors,
    put_label,
)  # fmt: skip

ALL_JOINTS, BACKGROUND, ALL_LIMBS = -2, -1, -1
STATUS_STYLE = {  # candidate pair status → (BGR colour, line thickness)
    REJECTED: ((60, 60, 230), 1),
    UNMATCHED: ((0, 200, 255), 1),
    ACCEPTED: ((80, 230, 80), 2),
}


def _css(bgr) -> str:
    return f"rgb({bgr[2]},{bgr[1]},{bgr[0]})"


class ExplorerViews:
    """The drawing half of :class:`~bpnet_core.viz.explorer.app.Explorer` (a mixin): reads ``controls``, ``pose``,
    ``result``, ``debug``, ``params``, ``people``, ``keypoints``, the cached image (``_image``), strides and box of
    the forward pass, and never changes them."""

    # ------------------------------------------------------------------------------------------------ pictures
    def _to_display(self, xy: np.ndarray) -> np.ndarray:
        """Network-input pixels (N, 2) → display pixels."""
        _, img, disp = self._image()
        return to_photo(xy, self.result.matrix).reshape(-1, 2) * (disp.shape[1] / img.shape[1])

    def map_to_display(self, maps: np.ndarray, stride: int | None = None) -> np.ndarray:
        """Maps at network-output resolution (h, w[, C]) of ``stride`` (default: the heatmaps') → display size,
        padding cropped off."""
        s = int(stride or self._strides[0])
        _, img, disp = self._image()
        h, w = maps.shape[:2]
        up = cv2.resize(np.ascontiguousarray(maps, np.float32), (w * s, h * s), interpolation=cv2.INTER_LINEAR)
        y0, x0, y1, x1 = self._box
        return cv2.resize(up[y0:y1, x0:x1], (disp.shape[1], disp.shape[0]), interpolation=cv2.INTER_LINEAR)

    def _people_picture(self) -> np.ndarray:
        _, img, disp = self._image()
        f = disp.shape[1] / img.shape[1]
        kps = self.keypoints.copy()
        kps[:, :, :2] *= f
        pic = draw_people(disp, kps, self.pose, [p.score for p in self.people], color_by="person")
        p = self.params
        n = len(self.people)
        put_label(pic, f"{n} {'person' if n == 1 else 'people'} | heatmap>{p.heatmap_threshold:.2f} "
                  f"paf>{p.paf_threshold:.2f} parts>={p.min_parts}", (4, pic.shape[0] - 6), scale=0.4)  # fmt: skip
        return pic

    def _map_picture(self) -> np.ndarray:
        layer = self.controls["layer"].value
        _, _, disp = self._image()
        res = self.result
        if layer == "heatmap":
            return self._heatmap_picture(disp, res.heatmaps)
        limb = int(self.controls["limb"].value)
        limbs = range(self.pose.num_limbs) if limb == ALL_LIMBS else [limb]
        name = "all limbs" if limb == ALL_LIMBS else self._limb_name(limb)
        if layer == "PAF colour":
            field = sum(res.pafs[:, :, 2 * k : 2 * k + 2] for k in limbs)
            pic = overlay_pafs(disp, self.map_to_display(field, self._strides[1]), limbs=[0])
            put_label(pic, f"PAF {name} (hue = direction)", (4, 14), scale=0.4)
            return pic
        if layer == "PAF arrows":
            pic = (disp * 0.6).astype(np.uint8)
            _, img, _ = self._image()
            stride = self._strides[1] * disp.shape[1] / img.shape[1] / self.result.matrix[0, 0]
            for k in limbs:
                pic = draw_paf_arrows(pic, res.pafs, k, stride, color=self.pose.limb_colors()[k])
            put_label(pic, f"PAF arrows {name}", (4, 14), scale=0.4)
            return pic
        return self._candidates_picture(disp, list(limbs), name)

    def _heatmap_picture(self, disp: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
        joint = int(self.controls["joint"].value)
        if joint == ALL_JOINTS:
            values, name = heatmaps[:, :, :-1].max(axis=2), "all joints (max)"
        elif joint == BACKGROUND:
            values, name = heatmaps[:, :, -1], "background"
        else:
            values, name = heatmaps[:, :, joint], self.pose.joint_names[joint]
        pic = overlay_map(disp, self.map_to_display(values))
        peaks = self.debug.peaks
        sel = np.ones(len(peaks), bool) if joint == ALL_JOINTS else peaks.joint == joint
        if joint != BACKGROUND:
            for x, y in self._to_display(peaks.xy[sel]):
                cv2.drawMarker(pic, (int(round(x)), int(round(y))), (255, 255, 255), cv2.MARKER_CROSS, 8, 1)
        put_label(pic, f"heatmap: {name} | {int(sel.sum()) if joint != BACKGROUND else 0} peaks", (4, 14), scale=0.4)
        return pic

    def _candidates_picture(self, disp: np.ndarray, limbs: list[int], name: str) -> np.ndarray:
        pic = (disp * 0.5).astype(np.uint8)
        peaks = self.debug.peaks
        xy = np.round(self._to_display(peaks.xy)).astype(int)
        counts = {ACCEPTED: 0, UNMATCHED: 0, REJECTED: 0}
        joints = set()
        for k in limbs:
            dbg = self.debug.limbs[k]
            joints.update(self.pose.limbs[k])
            if dbg is None:
                continue
            for status in (REJECTED, UNMATCHED, ACCEPTED):  # accepted drawn last, on top
                counts[status] += int((dbg.status == status).sum())
                if status == REJECTED and len(limbs) > 1:
                    continue  # every limb's rejected pairs at once hide the picture: pick one limb to see them
                color, thick = STATUS_STYLE[status]
                for i in np.nonzero(dbg.status == status)[0]:
                    a, b = xy[dbg.start[i]], xy[dbg.end[i]]
                    cv2.line(pic, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), color, thick, cv2.LINE_AA)
        for j in sorted(joints):
            for pid in peaks.by_joint[j]:
                cv2.circle(pic, (int(xy[pid][0]), int(xy[pid][1])), 3, (255, 255, 255), -1, cv2.LINE_AA)
        put_label(pic, f"candidates {name}", (4, 14), scale=0.4)
        put_label(pic, f"accepted {counts[ACCEPTED]}", (4, 30), STATUS_STYLE[ACCEPTED][0], scale=0.4)
        put_label(pic, f"unmatched {counts[UNMATCHED]}", (4, 46), STATUS_STYLE[UNMATCHED][0], scale=0.4)
        hidden = " (not drawn: pick one limb)" if len(limbs) > 1 else ""
        put_label(pic, f"rejected {counts[REJECTED]}{hidden}", (4, 62), STATUS_STYLE[REJECTED][0], scale=0.4)
        return pic

    # ------------------------------------------------------------------------------------------------ HTML
    def _table_html(self) -> str:
        people = self.people
        if not people:
            return "<p><i>No people decoded with these settings.</i></p>"
        colors = person_colors(len(people))
        names = self.pose.joint_names
        rows = []
        for n, p in enumerate(people):
            missing = [names[j] for j in range(self.pose.num_joints) if p.keypoints[j, 2] <= 0]
            rows.append(
                f"<tr><td><span style='display:inline-block;width:12px;height:12px;background:{_css(colors[n])}'>"
                f"</span> {n + 1}</td><td>{p.score:.3f}</td><td>{p.num_parts} / {self.pose.num_joints}</td>"
                f"<td>{p.mean_score:.2f}</td><td style='font-size:smaller'>{html.escape(', '.join(missing)) or '—'}"
                "</td></tr>"
            )
        head = ("<tr><th>person</th><th>score</th><th>joints found</th><th>mean part score</th>"
                "<th>missing joints</th></tr>")  # fmt: skip
        return f"<table class='bpnet-people' style='border-spacing:10px 2px'>{head}{''.join(rows)}</table>"

    def _timing_html(self) -> str:
        t = self.timings_ms
        res = self.result
        hw = res.input_hw
        scales = list(self._net_key[5]) if self._net_key else None
        return (
            f"<span>network <b>{t.get('network', 0):.1f} ms</b> · decode <b>{t.get('decode', 0):.1f} ms</b> · "
            f"draw {t.get('draw', 0):.1f} ms &nbsp;|&nbsp; input {hw[1]}×{hw[0]} (scale {res.scale:.3f}"
            f"{', scales ' + ', '.join(f'{s:g}' for s in scales) if scales else ''}"
            f"{', flip test' if self._net_key and self._net_key[6] else ''}) · maps "
            f"{res.heatmaps.shape[1]}×{res.heatmaps.shape[0]} &nbsp;|&nbsp; forward passes {self.forward_passes}, "
            f"decodes {self.decodes}</span>"
        )
