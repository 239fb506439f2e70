"""``bpnet import_model``: an external OpenPose-family network (ONNX, frozen TF graph, OpenVINO IR) → bpnet model."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("import_model", help="import an external network (.onnx, .pb, .xml) with a model card",
                       description="Convert (if needed) an external heatmap + PAF network and embed the contract its "
                       "model card states (input, colour order, normalisation, outputs, strides, pose config, "
                       "recommended preprocessing), so every bpnet verb can use it. Shipped cards: "
                       "human-pose-estimation-0001, mobilenet_thin.")  # fmt: skip
    p.add_argument("-m", "--model", required=True, help="external model: .onnx, .pb (frozen GraphDef) or .xml (+ .bin)")
    p.add_argument("--card", required=True, help="model card: a YAML path or a shipped card name")
    p.add_argument(
        "-o",
        "--output_file",
        required=True,
        help="bpnet model to write: .onnx or .xml (inference), .keras (trainable: rebuilt with bpnet's "
        "model builder, weights copied, checked against the source on real photos)",
    )
    p.add_argument(
        "--check_ap",
        choices=("auto", "yes", "no"),
        default="auto",
        help=".keras only: compare COCO AP on the 36 shipped real photos with the source's (auto: for a "
        "quantised OpenVINO IR source)",
    )
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.importer import import_model

    check_ap = {"auto": None, "yes": True, "no": False}[args.check_ap]
    r = import_model(args.model, args.card, args.output_file, args.overrides, check_ap=check_ap)
    c = r["check"]
    if str(args.output_file).lower().endswith(".keras"):
        p = c["parity"]
        ap = c.get("ap")
        ap_text = (
            ""
            if not ap
            else f"; AP on the 36 real photos {ap['rebuilt']:.3f}"
            + (f" (source {ap['source']:.3f})" if ap["source"] is not None else "")
        )
        print(f"imported {args.model} as trainable {r['output']} ({r['bytes'] / 1e6:.1f} MB, {r['params']:,} "
              f"parameters, card {r['meta']['name']}); parity with the source on {p['photos']} real photos: max "
              f"|diff| {p['max_abs_diff']:.2g}{ap_text}; reloads bit-exactly")  # fmt: skip
        return 0
    print(f"imported {args.model} as {r['output']} ({r['bytes'] / 1e6:.1f} MB, card {r['meta']['name']}); "
          f"self-check at {c['input_hw'][0]}x{c['input_hw'][1]}: heatmaps {c['heatmaps']['shape']}, "
          f"PAFs {c['pafs']['shape']}")  # fmt: skip
    return 0
