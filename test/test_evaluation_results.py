"""``evaluate --results``: COCO results files scored against a COCO ground truth with no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trt_perception.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "val"


def _results(keep_every: int) -> list[dict]:
    """The ground-truth boxes as detections (score 0.9), every ``keep_every``-th one kept."""
    anns = json.loads((DATA / "annotations.json").read_text())["annotations"]
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for i, a in enumerate(anns)
        if i % keep_every == 0
    ]


def test_results_files_scored_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "all.json").write_text(json.dumps(_results(1)))
    (tmp_path / "half.json").write_text(json.dumps(_results(2)))
    argv = ["evaluate", "--dataset", str(DATA), "--out", str(tmp_path / "out")]
    argv += ["--results", f"perfect={tmp_path / 'all.json'}", "--results", str(tmp_path / "half.json")]
    assert main(argv) == 0
    scores = json.loads((tmp_path / "out" / "results_scores.json").read_text())
    assert list(scores) == ["perfect", "half"]
    assert scores["perfect"]["AP"] == pytest.approx(1.0) and scores["perfect"]["AP50"] == pytest.approx(1.0)
    assert 0.3 < scores["half"]["AR100"] < 0.7 and scores["half"]["AP"] < scores["perfect"]["AP"]
    assert {"AP[car]", "AP[plate]", "AP_small", "AR_large"} <= set(scores["half"])
    table = capsys.readouterr().out
    assert "| metric | perfect | half | half vs perfect |" in table and "| AP | 100.00 % |" in table


def test_results_need_a_coco_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.json").write_text("[]")
    assert main(["evaluate", "--bag", str(tmp_path), "--results", str(tmp_path / "r.json")]) == 2
    assert "--results scores COCO detections" in capsys.readouterr().err
