"""``PoseConfig``: the single contract for joints, limbs and channel counts.

Label generation, the model's output channels, the decoder and drawing all take a ``PoseConfig``; nothing else in
the code base lists joints or limbs.

Tensor glossary (one image, channels last):

=============  =====================  ==========================================================================
tensor         shape                  meaning
=============  =====================  ==========================================================================
heatmaps       (H/s, W/s, J + 1)      joint j confidence in channel j; background (1 − max) in the last channel
pafs           (H/s, W/s, 2·L)        limb k: x at channel 2k, y at 2k+1, unit vector from limb[k][0] to limb[k][1]
keypoints      (P, J, 3)              x, y in pixels and a flag/confidence; flag 0 = missing
=============  =====================  ==========================================================================

A map cell (i, j) is centred on input pixel (j·s + (s−1)/2, i·s + (s−1)/2) where s is the stride.

The JSON file (``model_pose_config/*.json``) lists ``keypoints`` (joint names), ``skeleton`` (1-based joint index
pairs, COCO convention) and ``skeleton_edge_names`` (the same pairs by name); both must agree. Optional
``derived_joints`` maps a joint to the dataset joints it is the midpoint of (TAO's neck = mid-shoulders).
"""

from __future__ import annotations

import colorsys
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnet_core.errors import BpnetError
from bpnet_core.fileio import read_json
from bpnet_core.paths import find_shipped, project_file


@dataclass(frozen=True)
class PoseConfig:
    """Joints, limbs and the derived channel layout of one pose model."""

    name: str
    joint_names: list[str]
    limbs: list[tuple[int, int]]
    derived_joints: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.name
        if not self.joint_names:
            raise BpnetError(f"{where}: 'keypoints' is empty")
        if len(set(self.joint_names)) != len(self.joint_names):
            dup = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise BpnetError(f"{where}: duplicate joint names {dup}")
        if not self.limbs:
            raise BpnetError(f"{where}: 'skeleton' is empty")
        n = len(self.joint_names)
        for k, (a, b) in enumerate(self.limbs):
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise BpnetError(f"{where}: limb {k} ({a}, {b}) is not a pair of distinct joints in 0..{n - 1}")
        for joint, parents in self.derived_joints.items():
            if joint not in self.joint_names:
                raise BpnetError(f"{where}: derived_joints names unknown joint {joint!r}")
            if not parents:
                raise BpnetError(f"{where}: derived_joints.{joint} lists no source joints")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_json(cls, path: str | Path) -> PoseConfig:
        """Load a pose config file (``keypoints``, ``skeleton`` 1-based, ``skeleton_edge_names``), or a shipped one
        by name (``bpnet_18joints.json``; ``bpnet_core.paths.find_shipped``)."""
        path = find_shipped(path)
        data = read_json(path, "pose config")
        if not isinstance(data, dict):
            raise BpnetError(f"{path}: pose config must be a JSON object")
        allowed = {
            "name",
            "supercategory",
            "keypoints",
            "skeleton",
            "skeleton_edge_names",
            "derived_joints",
            "description",
        }
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                raise BpnetError(f"{path}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        names = data.get("keypoints")
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise BpnetError(f"{path}: 'keypoints' must be a list of joint names")
        index = {name: i for i, name in enumerate(names)}
        limbs: list[tuple[int, int]] | None = None
        if "skeleton_edge_names" in data:
            limbs = []
            for k, pair in enumerate(data["skeleton_edge_names"]):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise BpnetError(f"{path}: skeleton_edge_names[{k}] must be a pair of joint names")
                for name in pair:
                    if name not in index:
                        hint = difflib.get_close_matches(str(name), names, n=1)
                        raise BpnetError(
                            f"{path}: skeleton_edge_names[{k}] names unknown joint {name!r}"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        )
                limbs.append((index[pair[0]], index[pair[1]]))
        if "skeleton" in data:
            one_based = data["skeleton"]
            try:
                from_idx = [(int(a) - 1, int(b) - 1) for a, b in one_based]
            except (TypeError, ValueError):
                raise BpnetError(f"{path}: 'skeleton' must be a list of 1-based [a, b] index pairs") from None
            for k, (a, b) in enumerate(from_idx):
                if not (0 <= a < len(names) and 0 <= b < len(names)):
                    raise BpnetError(f"{path}: skeleton[{k}] = {one_based[k]} is outside joints 1..{len(names)}")
            if limbs is not None and limbs != from_idx:
                k = (
                    next(i for i, (x, y) in enumerate(zip(limbs, from_idx)) if x != y)
                    if len(limbs) == len(from_idx)
                    else min(len(limbs), len(from_idx))
                )
                raise BpnetError(f"{path}: 'skeleton' and 'skeleton_edge_names' disagree at edge {k}")
            limbs = from_idx
        if limbs is None:
            raise BpnetError(f"{path}: needs 'skeleton' or 'skeleton_edge_names'")
        derived = data.get("derived_joints", {}) or {}
        if not isinstance(derived, dict):
            raise BpnetError(f"{path}: 'derived_joints' must map a joint name to a list of joint names")
        return cls(
            name=str(data.get("name", path.stem)),
            joint_names=list(names),
            limbs=limbs,
            derived_joints={str(k): list(v) for k, v in derived.items()},
            source=str(path),
        )

    # ---------------------------------------------------------------- derived layout
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_limbs(self) -> int:
        return len(self.limbs)

    @property
    def num_heatmap_channels(self) -> int:
        """Joints + 1 background channel (background last)."""
        return self.num_joints + 1

    @property
    def num_paf_channels(self) -> int:
        """Two channels (x, y) per limb."""
        return 2 * self.num_limbs

    def paf_channels(self, limb: int) -> tuple[int, int]:
        """Channels of limb ``limb``'s PAF: (x, y) = (2k, 2k+1)."""
        return 2 * limb, 2 * limb + 1

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            hint = difflib.get_close_matches(name, self.joint_names, n=1)
            raise BpnetError(
                f"{self.source or self.name}: unknown joint {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            ) from None

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        """(left, right) joint index pairs, matched by the ``left_``/``right_`` name prefixes."""
        pairs = []
        for i, name in enumerate(self.joint_names):
            if name.startswith("left_"):
                other = "right_" + name[len("left_") :]
                if other in self.joint_names:
                    pairs.append((i, self.joint_names.index(other)))
        return pairs

    @property
    def flip_permutation(self) -> list[int]:
        """Joint order after a left-right flip: ``flipped[:, j] = original[:, perm[j]]``."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def flip_maps(self) -> tuple[list[int], list[int], np.ndarray]:
        """How to read a left-right mirrored image's maps as the original's (flip test).

        Returns ``(heat_perm, paf_perm, paf_sign)``: after mirroring the maps back along the width axis,
        ``heat[..., c] = mirrored_heat[..., heat_perm[c]]`` (background stays last) and
        ``paf[..., c] = paf_sign[c] * mirrored_paf[..., paf_perm[c]]``. Limb ``(a, b)`` reads its mirror limb
        ``(perm[a], perm[b])`` with x negated, or ``(perm[b], perm[a])`` with y negated (it points the other way).
        """
        perm = self.flip_permutation
        index = {tuple(limb): k for k, limb in enumerate(self.limbs)}
        paf_perm: list[int] = []
        signs: list[float] = []
        for k, (a, b) in enumerate(self.limbs):
            if (perm[a], perm[b]) in index:
                m, sx, sy = index[(perm[a], perm[b])], -1.0, 1.0
            elif (perm[b], perm[a]) in index:
                m, sx, sy = index[(perm[b], perm[a])], 1.0, -1.0
            else:
                raise BpnetError(
                    f"{self.source or self.name}: limb {k} ({self.joint_names[a]}-{self.joint_names[b]}) has no "
                    "left-right mirror limb in 'skeleton'; flip test needs a symmetric skeleton"
                )
            paf_perm += [2 * m, 2 * m + 1]
            signs += [sx, sy]
        return perm + [self.num_joints], paf_perm, np.asarray(signs, np.float32)

    def limb_colors(self) -> list[tuple[int, int, int]]:
        """One distinct BGR colour per limb (evenly spaced hues), for drawing."""
        colors = []
        for k in range(self.num_limbs):
            r, g, b = colorsys.hsv_to_rgb(k / max(1, self.num_limbs), 0.85, 1.0)
            colors.append((int(b * 255), int(g * 255), int(r * 255)))
        return colors

    def to_json_dict(self) -> dict:
        """The file form (1-based ``skeleton`` plus ``skeleton_edge_names``)."""
        return {
            "name": self.name,
            "keypoints": list(self.joint_names),
            "skeleton": [[a + 1, b + 1] for a, b in self.limbs],
            "skeleton_edge_names": [[self.joint_names[a], self.joint_names[b]] for a, b in self.limbs],
            "derived_joints": dict(self.derived_joints),
        }


def default_pose_config_path() -> Path:
    """The shipped 18-joint config (``model_pose_config/bpnet_18joints.json``)."""
    return project_file("model_pose_config", "bpnet_18joints.json")
