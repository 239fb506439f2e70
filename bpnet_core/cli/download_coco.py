"""``bpnet download_coco``: download COCO 2017 images and keypoint annotations (resumable, checksummed)."""

from __future__ import annotations


def add_parser(sub) -> None:
    from bpnet_core.cli import add_common

    p = sub.add_parser("download_coco", help="download and unpack COCO 2017 (resumable, MD5-checked)",
                       description="Download COCO 2017 zips with HTTP Range resume, verify their MD5, unpack them "
                       "under --root (refusing members that escape it) and write dataset_spec.json. Finished "
                       "parts are skipped on a re-run.")  # fmt: skip
    p.add_argument("--root", required=True, help="dataset directory (COCO's root_directory_path)")
    p.add_argument("--base_url", default=None, help="mirror base URL (default http://images.cocodataset.org)")
    p.add_argument(
        "--parts",
        default="train2017,val2017,annotations",
        help="comma-separated parts: train2017, val2017, annotations (default: all three)",
    )
    p.add_argument("--keep_zip", action="store_true", help="keep the zip files after unpacking")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from bpnet_core.data.download import COCO_BASE_URL, download_coco
    from bpnet_core.errors import BpnetError

    if args.overrides:
        raise BpnetError("download_coco reads no spec: --set is not accepted here")
    s = download_coco(args.root, base_url=args.base_url or COCO_BASE_URL, parts=args.parts,
                      progress=not args.no_progress, keep_zip=args.keep_zip)  # fmt: skip
    done = ", ".join(f"{k} {v}" for k, v in s["parts"].items())
    print(f"{done}; {s['bytes_downloaded'] / 1e6:.1f} MB in {s['seconds']:.1f} s → {s['dataset_spec']}")
    return 0
