"""The dataset spec's schema (``data_pose_config/coco_spec.json``, TAO's layout): splits, the person category,
visibility flags and filtering."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, model_validator

from bpnet_core.config.blocks import Block, SpecRoot
from bpnet_core.config.fields import Bool, Float, Int, PathStr, SpecValueError
from bpnet_core.errors import BpnetError

# ---------------------------------------------------------------------------------------------------- dataset spec

VisibilityName = Literal["visible", "annotatable", "occluded", "truncated", "not_labeled", "not_labeled_in_dataset"]


class DatasetSplit(Block):
    """One split; every path is relative to ``root_directory_path`` (or absolute)."""

    images_root_dir_path: str
    mask_root_dir_path: str
    annotation_root_dir_path: str


class Category(Block):
    supercategory: str = "person"
    id: Int = 1
    name: str = "person"
    num_joints: Int = Field(ge=1)
    keypoints: list[str] = Field(min_length=1)
    skeleton: list[Annotated[list[Int], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    skeleton_edge_names: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Category:
        n = len(self.keypoints)
        if self.num_joints != n:
            raise SpecValueError(
                "num_joints", f"must equal the number of keypoints ({n}) (got {self.num_joints})", ("keypoints",)
            )
        for k, (a, b) in enumerate(self.skeleton):
            if not (1 <= a <= n and 1 <= b <= n):
                raise SpecValueError(f"skeleton[{k}]", f"must be 1-based joint indices in 1..{n} (got [{a}, {b}])")
        for k, pair in enumerate(self.skeleton_edge_names):
            for name in pair:
                if name not in self.keypoints:
                    hint = difflib.get_close_matches(name, self.keypoints, n=1)
                    raise SpecValueError(
                        f"skeleton_edge_names[{k}]",
                        f"names unknown joint {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                    )
        if self.skeleton and self.skeleton_edge_names:
            by_name = [[self.keypoints[a - 1], self.keypoints[b - 1]] for a, b in self.skeleton]
            if by_name != [list(p) for p in self.skeleton_edge_names]:
                k = next((i for i, (x, y) in enumerate(zip(by_name, self.skeleton_edge_names)) if x != list(y)), None)
                k = min(len(by_name), len(self.skeleton_edge_names)) if k is None else k
                raise SpecValueError("skeleton_edge_names", f"disagrees with skeleton at edge {k}", ("skeleton",))
        return self


class VisibilityFlags(Block):
    """``value``: the dataset's raw flag per name; ``mapping``: dataset name → bpnet visibility class."""

    value: dict[str, Int] = Field(default_factory=lambda: {"visible": 2, "occluded": 1, "not_labeled": 0})
    mapping: dict[str, VisibilityName] = Field(
        default_factory=lambda: {"visible": "visible", "occluded": "occluded", "not_labeled": "not_labeled"}
    )

    @model_validator(mode="after")
    def _mapped_names_exist(self) -> VisibilityFlags:
        for name in self.mapping:
            if name not in self.value:
                raise SpecValueError(
                    f"mapping.{name}", f"maps a name that visibility_flags.value does not define ({sorted(self.value)})"
                )
        return self


class DataFilteringParams(Block):
    min_acceptable_height: Float = Field(32, ge=0)
    min_acceptable_width: Float = Field(32, ge=0)
    min_acceptable_kpts: Int = Field(5, ge=0)
    min_acceptable_interperson_dist_ratio: Float = Field(0.3, ge=0)


class SplitPaths(NamedTuple):
    images_dir: Path
    masks_dir: Path
    annotation_file: Path


class DatasetSpec(SpecRoot):
    """The dataset spec of ``bpnet dataset_convert`` (``data_pose_config/coco_spec.json``, TAO's layout)."""

    dataset: Literal["coco"] = "coco"
    root_directory_path: PathStr
    train_data: DatasetSplit
    test_data: DatasetSplit
    duplicate_data_with_each_person_as_center: Bool = True
    categories: list[Category] = Field(min_length=1)
    visibility_flags: VisibilityFlags = Field(default_factory=VisibilityFlags)
    data_filtering_params: DataFilteringParams = Field(default_factory=DataFilteringParams)

    @property
    def root(self) -> Path:
        """``root_directory_path`` made absolute (a relative one against the spec file's folder)."""
        return self.resolve(self.root_directory_path)  # type: ignore[return-value]

    def split(self, mode: str) -> SplitPaths:
        """Absolute ``(images_dir, masks_dir, annotation_file)`` of ``mode`` (``"train"`` or ``"test"``)."""
        if mode not in ("train", "test"):
            raise BpnetError(f"{self.source}: unknown split {mode!r} (choose 'train' or 'test')")
        part = self.train_data if mode == "train" else self.test_data
        root = self.root

        def join(p: str) -> Path:
            return Path(os.path.normpath(os.path.join(os.fspath(root), os.path.expanduser(p))))

        return SplitPaths(
            join(part.images_root_dir_path), join(part.mask_root_dir_path), join(part.annotation_root_dir_path)
        )
