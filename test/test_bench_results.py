"""Every benchmark result speaks one schema (``bench.common.target`` rows), the one
``bench/summarize.py`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import target

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def test_target_rows() -> None:
    assert target("a", 1.5, "<=", 2.0, "ms") == {"name": "a", "value": 1.5, "target": "<= 2.0 ms", "pass": True}
    assert target("b", None, ">=", 3, "x")["pass"] is None  # not measured: neither pass nor fail
    assert target("c", 4.0, "report", None) == {"name": "c", "value": 4.0, "target": None, "pass": None}
    assert target("d", True, "==", True, shown="a view")["shown"] == "a view"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_result_files_use_the_schema(path: Path) -> None:
    doc = json.loads(path.read_text())
    if not isinstance(doc.get("targets", []), list):
        pytest.skip(f"{path.name}: not written by bench.common.target yet")
    for row in doc.get("targets", []):
        assert {"name", "value", "target", "pass"} <= set(row), row
        assert not {"measured", "passed", "op"} & set(row), row
