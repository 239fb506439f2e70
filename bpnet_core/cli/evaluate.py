"""``bpnet evaluate``: COCO keypoint AP of a model on a dataset's test split (TAO flags)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common, add_key, add_model_flags

    p = sub.add_parser("evaluate", help="COCO keypoint AP on the dataset's test split",
                       description="Run inference over the test split of a dataset spec and evaluate with "
                       "pycocotools (iouType=keypoints); writes results.csv, metrics.json "
                       "and per_image.csv.")  # fmt: skip
    add_model_flags(p)
    p.add_argument("-d", "--dataset_spec", required=True, help="dataset spec (coco_spec.json)")
    p.add_argument("--dataset", default="coco", choices=["coco"], help="dataset format (TAO flag)")
    p.add_argument("-r", "--results_dir", required=True)
    p.add_argument("--dump_visualizations", action="store_true")
    add_key(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.cli import predictor_from_args
    from bpnet_core.config import load_dataset_spec
    from bpnet_core.infer.evaluation import run_evaluation

    predictor = predictor_from_args(args)
    m = run_evaluation(None, predictor, load_dataset_spec(args.dataset_spec), args.results_dir,
                       dump_visualizations=args.dump_visualizations)  # fmt: skip
    print("  ".join(f"{k} {m[k]:.3f}" for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")) + f"  → {args.results_dir}")
    return 0
