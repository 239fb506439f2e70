"""``bpnet import_tao``: a model trained with TAO 5 (plain Keras 2 ``.hdf5``) → a bpnet ``.keras`` model."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key

    p = sub.add_parser("import_tao", help="convert a TAO 5 BodyPoseNet .hdf5 into a bpnet .keras model",
                       description="Read the weights of a BodyPoseNet trained with TAO 5 (TAO 5 writes a plain, "
                       "unencrypted Keras 2 .hdf5; older TAO/TLT .tlt/.etlt files are encrypted: export them to .hdf5 "
                       "or .onnx with TAO 5 first, bpnet does not decrypt), map TAO's layer names (block_1a_conv_1, "
                       "stage2/conv1, stage2/cmap/conv6, heatmap_out ...) onto bpnet's, check every shape and write a "
                       ".keras model with its contract, which inference, evaluate, prune, export and train "
                       "(pretrained_weights) take. The architecture comes from the train spec (-e, TAO's "
                       "bpnet_train_m1_coco.yaml works), the output widths from its pose config (TAO's paths that do "
                       "not exist here fall back to the shipped 18-joint config; --set "
                       "dataloader.pose_config.pose_config_path=... picks another).")  # fmt: skip
    p.add_argument("-m", "--model", required=True, help="TAO 5 model: .hdf5 (or .h5)")
    p.add_argument("-e", "--experiment_spec", required=True, help="the train spec the model was trained with")
    p.add_argument("-o", "--output_file", required=True, help="bpnet model to write (.keras)")
    p.add_argument(
        "--pruned",
        action="store_true",
        help="a model pruned by TAO: hidden convolutions take their filter counts from the file",
    )
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def import_tao(model_file, spec_file, output_file, overrides=(), pruned: bool = False) -> dict:
    """Convert a TAO 5 ``.hdf5`` to a bpnet ``.keras`` (with its contract); returns a summary."""
    from pathlib import Path

    from bpnet_core.config import load_train_spec
    from bpnet_core.costs import count_params
    from bpnet_core.errors import BpnetError
    from bpnet_core.fileio import make_dir
    from bpnet_core.meta import check_encrypted
    from bpnet_core.model import count_conv_params, num_stages, save_bpnet_model, spec_normalization
    from bpnet_core.model.tao import load_tao_hdf5, spec_pose

    check_encrypted(model_file)
    out = Path(output_file)
    if out.suffix.lower() != ".keras":
        raise BpnetError(f"{out}: import_tao writes a .keras model (got {out.suffix or 'no suffix'})")
    make_dir(out.parent, "output folder")
    spec = load_train_spec(spec_file, overrides)
    pose = spec_pose(spec)
    model = load_tao_hdf5(model_file, spec, pose, widths_from_file=pruned, strict=True)
    save_bpnet_model(model, out, pose, spec_normalization(spec))
    return {"output": str(out), "stages": num_stages(model), "params": count_params(model),
            "conv_params": count_conv_params(model), "pose": pose.name, "bytes": out.stat().st_size}  # fmt: skip


def run(args) -> int:
    r = import_tao(args.model, args.experiment_spec, args.output_file, args.overrides, args.pruned)
    print(f"imported TAO model {args.model} as {r['output']} ({r['stages']} stages, {r['params']:,} parameters, "
          f"pose {r['pose']}, {r['bytes'] / 1e6:.1f} MB)")  # fmt: skip
    return 0
