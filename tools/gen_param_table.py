"""Write the README's parameter tables from the nodes' declared ``PARAMETERS``.

``python -m tools.gen_param_table`` rewrites the block between the ``params:begin``/``params:end``
markers of README.md; ``--check`` exits 1 when the README is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- params:begin -->", "<!-- params:end -->"


def node_modules() -> dict[str, str]:
    """Console script -> module name, read from setup.py's NODES literal."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "NODES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py has no NODES mapping")


def _escape(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would end the table cell


def _cell(value: object) -> str:
    text = (
        repr(value)
        if isinstance(value, str)
        else str(value).replace("True", "true").replace("False", "false")
    )
    return _escape(text)


def _table(title: str, params: Any) -> list[str]:
    rows = [f"| `{p.name}` | `{_cell(p.default)}` | {_escape(p.description)} |" for p in params]
    return [title, "", "| parameter | default | description |", "| --- | --- | --- |", *rows]


def render() -> str:
    from trt_perception.ros.node_base import COMMON_PARAMETERS

    lines = []
    for exe, module in node_modules().items():
        mod = importlib.import_module(f"trt_perception.nodes.{module}")
        lines += [*_table(f"#### `{exe}` (`config/{exe}.yaml`)", mod.PARAMETERS), ""]
    lines += _table("#### Every node also declares", COMMON_PARAMETERS)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when README.md is out of date")
    args = parser.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{render()}{END}{tail}"
    if args.check:
        if updated != text:
            print(
                "README.md parameter tables are out of date: run python -m tools.gen_param_table",
                file=sys.stderr,
            )
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
