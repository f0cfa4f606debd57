"""One table of every benchmark target from ``bench/results/*.json`` -> ``bench/results/SUMMARY.md``.

``python -m bench.summarize`` after ``bench/run_all.sh``; the README quotes the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    targets = doc.get("targets", [])
    if isinstance(targets, dict):  # {name: {value, target, pass}}
        return [{"name": k, **v} for k, v in targets.items()]
    return list(targets)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def rows() -> list[str]:
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        machine = doc.get("machine", {})
        load = machine.get("load_average") or machine.get("loadavg") or doc.get("load_average_1_5_15")
        load_1min = f"{load[0]:.1f}" if isinstance(load, list) and load else ""
        for t in _targets(doc):
            measured = t.get("measured", t.get("value"))
            value = t.get("value")
            shown = _fmt(measured) if not isinstance(measured, str) or value is None else measured
            target = t.get("target")
            passed = t.get("pass", t.get("passed"))
            if target is None and passed is None:
                target, mark = "(reported)", "-"
            elif target is None:
                target, mark = "(in the name)", "pass" if passed else "**fail**"
            else:
                target = f"{t['op']} {_fmt(target)}" if "op" in t else _fmt(target)
                mark = "pass" if passed else "**fail**"
            out.append(f"| {path.stem} | {t['name']} | {shown} | {target} | {mark} | {load_1min} |")
    return out


def main() -> int:
    table = [
        "| bench | target | measured | wanted | result | load average |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    table += rows()
    text = "# Benchmark targets\n\nFrom `bench/results/*.json` (`bench/run_all.sh`, then `python -m bench.summarize`).\n\n"
    (RESULTS / "SUMMARY.md").write_text(text + "\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
