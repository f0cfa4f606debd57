"""``scripts/jetson_check.sh --quick``: the one-command machine verdict runs here (no TensorRT) and its
report says which steps it skipped and why, and which ran."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from trt_perception.inference.factory import tensorrt_unavailable_reason

ROOT = Path(__file__).resolve().parents[1]


def test_quick_check_reports_what_it_skipped_and_why(tmp_path: Path) -> None:
    p = subprocess.run(
        ["bash", str(ROOT / "scripts" / "jetson_check.sh"), "--quick", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    steps = {s["name"]: s for s in json.loads((tmp_path / "report.json").read_text())["steps"]}
    markdown = (tmp_path / "report.md").read_text()
    trt_why = tensorrt_unavailable_reason()
    trt_steps = ["TensorRT-marked tests", "engines fp32", "engines int8"]
    if trt_why:  # these machines: TensorRT steps skipped, with the reason in the report
        assert all(steps[n]["status"] == "skipped" and trt_why in steps[n]["why"] for n in trt_steps)
        assert markdown.startswith("# trt_perception machine check: PASS (with skips)")
        assert f"| TensorRT-marked tests | SKIPPED | 0 | TensorRT cannot run here: {trt_why} |" in markdown
    else:
        assert steps["TensorRT-marked tests"]["status"] == "passed"
    for task in ("detection", "plates", "segmentation"):  # the non-TensorRT parts ran
        assert steps[f"table: evaluate {task}"]["status"] == "passed"
        assert (tmp_path / f"evaluate_{task}" / "report.md").is_file()
    bench = steps["seed 002: bench_thesis"]
    assert bench["status"] == "skipped" and "quick mode" in bench["why"]
    assert "AP @[IoU=0.50:0.95" in markdown and "OpenVINO" in markdown
