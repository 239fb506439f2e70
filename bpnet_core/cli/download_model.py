"""``bpnet download_model``: download a pretrained pose network (Open Model Zoo OpenVINO IR), resumable, checksummed."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("download_model", help="download a pretrained pose network (OpenVINO IR, resumable)",
                       description="Download Intel Open Model Zoo's human-pose-estimation-0001 (.xml + .bin) into "
                       "OUTPUT_DIR/<name>/<precision>/ with HTTP Range resume. FP16-INT8 is verified against known "
                       "sha256s; for FP32 and FP16 the sha256 is recorded in download_manifest.json (not verified) "
                       "and the pair is test-loaded with openvino when it is installed.")  # fmt: skip
    p.add_argument("name", metavar="NAME", help="model name: human-pose-estimation-0001")
    p.add_argument("--precision", default=None, help="FP32, FP16 or FP16-INT8 (default FP16-INT8)")
    p.add_argument("-o", "--output_dir", required=True, help="folder to download into (created if missing)")
    p.add_argument(
        "--base_url",
        default=None,
        help="mirror base URL holding <name>/<precision>/<file> (default: "
        "https://storage.openvinotoolkit.org/repositories/open_model_zoo/2022.1/models_bin/3)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.data.models import download_model
    from bpnet_core.errors import BpnetError

    if args.overrides:
        raise BpnetError("download_model reads no spec: --set is not accepted here")
    s = download_model(args.name, args.output_dir, precision=args.precision, base_url=args.base_url,
                       progress=not args.no_progress)  # fmt: skip
    check = ("sha256 verified" if s["verified"] else
             f"sha256 recorded in {s['manifest']}, not verified (no published checksum; openvino load check: "
             f"{s['load_check']})")  # fmt: skip
    print(
        f"{s['model']} {s['precision']} {s['status']}; {s['bytes_downloaded'] / 1e6:.1f} MB in "
        f"{s['seconds']:.1f} s; {check} → {s['dir']}"
    )
    return 0
