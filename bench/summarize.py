"""One table of every benchmark target from ``bench/results/*.json`` -> ``bench/results/SUMMARY.md``.

``python -m bench.summarize`` after ``bench/run_all.sh``; the README quotes the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def rows() -> list[str]:
    """One line per ``bench.common.target`` row of every result file."""
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        load = doc.get("machine", {}).get("load_average")
        load_1min = f"{load[0]:.1f}" if load else ""
        for t in doc.get("targets", []):
            shown = t["shown"] if "shown" in t else _fmt(t["value"])
            wanted, passed = t.get("target"), t.get("pass")
            if wanted is None and passed is None:
                wanted, mark = "(reported)", "-"
            elif wanted is None:
                wanted, mark = "(in the name)", "pass" if passed else "**fail**"
            else:
                mark = "pass" if passed else "**fail**"
            out.append(f"| {path.stem} | {t['name']} | {shown} | {wanted} | {mark} | {load_1min} |")
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
