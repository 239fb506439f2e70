"""Spec files: typed schemas (:mod:`.schema`) and strict loading, overrides and dumping (:mod:`.io`).

>>> from bpnet_core.config import load_train_spec
>>> spec = load_train_spec("specs/bpnet_train_m1_demo.yaml", ["dataloader.batch_size=4"])
>>> spec.model.stages, spec.stride, spec.dataloader.batch_size
(2, 8, 4)
"""

from bpnet_core.config.contract import spec_normalization, training_contract, with_contract_normalization
from bpnet_core.config.io import (
    apply_overrides,
    as_train_spec,
    dump_spec,
    infer_spec_from_model,
    load_dataset_spec,
    load_infer_spec,
    load_train_spec,
    override,
    parse_overrides,
    read_spec_file,
)
from bpnet_core.config.schema import (
    SHIPPED_DIRS,
    DatasetSpec,
    DecoderConfig,
    InferSpec,
    SplitPaths,
    TrainSpec,
    resolve_path,
    validate_against_pose,
)

__all__ = [
    "SHIPPED_DIRS",
    "DatasetSpec",
    "DecoderConfig",
    "InferSpec",
    "SplitPaths",
    "TrainSpec",
    "apply_overrides",
    "as_train_spec",
    "dump_spec",
    "infer_spec_from_model",
    "load_dataset_spec",
    "load_infer_spec",
    "load_train_spec",
    "override",
    "parse_overrides",
    "read_spec_file",
    "resolve_path",
    "spec_normalization",
    "training_contract",
    "validate_against_pose",
    "with_contract_normalization",
]
