"""The bpnet command line: every verb's help, the console script, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from bpnet_core.cli import VERBS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def registered_verbs():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    return sorted(sub.choices)


def test_core_verbs_registered():
    assert {"synthetic_data", "download_coco", "dataset_convert", "inference", "evaluate"} <= set(registered_verbs())
    assert set(registered_verbs()) <= set(VERBS)


@pytest.mark.parametrize("verb", registered_verbs())
def test_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"bpnet {verb}" in out and "--log_level" in out


def test_console_script_and_module_entry_points():
    exe = Path(sys.executable).parent / "bpnet"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("bpnet ")
    r = subprocess.run([sys.executable, "-m", "bpnet_core", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "dataset_convert" in r.stdout


def test_spec_typo_through_the_console_script(tmp_path):
    spec = tmp_path / "infer.yaml"
    spec.write_text((ROOT / "specs" / "infer_spec.yaml").read_text().replace("heatmap_threshold", "heatmap_treshold"))
    exe = Path(sys.executable).parent / "bpnet"
    r = subprocess.run([str(exe), "inference", "-i", str(spec), "-m", "x.keras", "--input", "x.jpg", "-r",
                        str(tmp_path / "out")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "heatmap_treshold" in lines[0] and "heatmap_threshold" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unknown_override_key(capsys, tmp_path):
    code = main(["inference", "-i", str(ROOT / "specs" / "infer_spec.yaml"), "--input", "x.jpg", "-r", str(tmp_path),
                 "--set", "paf_treshold=0.1"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "paf_threshold" in err[0]
