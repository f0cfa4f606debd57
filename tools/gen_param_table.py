"""Write the README's parameter tables and ``config/<node>.yaml`` from the nodes' declared ``PARAMETERS``.

``python -m tools.gen_param_table`` rewrites the block between the ``params:begin``/``params:end``
markers of README.md and every node's ``config/<exe>.yaml`` (its leading comment lines kept, then
every parameter with its description and default); ``--check`` exits 1 when one is out of date (the
test suite runs it). Stage parameters come from the stage config dataclasses, so this is where a new
config field reaches the README and the YAML. Live parameters (``Param.live``: they apply from the next
frame when set at run time) are marked in both.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from trt_perception.ros.node_base import COMMON_PARAMETERS

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
    """``live``: set at run time, it applies from the next frame (the others are read at configure)."""
    rows = [
        f"| `{p.name}` | `{_cell(p.default)}` | {'yes' if p.live else ''} | {_escape(p.description)} |"
        for p in params
    ]
    return [title, "", "| parameter | default | live | description |", "| --- | --- | --- | --- |", *rows]


def node_parameters(module: str) -> Any:
    return importlib.import_module(f"trt_perception.nodes.{module}").PARAMETERS


def render() -> str:
    lines = []
    for exe, module in node_modules().items():
        lines += [*_table(f"#### `{exe}` (`config/{exe}.yaml`)", node_parameters(module)), ""]
    lines += _table("#### Every node also declares", COMMON_PARAMETERS)
    return "\n".join(lines) + "\n"


def readme_text(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render()}{END}{tail}"


def _yaml_entry(name: str, value: object) -> list[str]:
    """``name: value`` in YAML: JSON scalars and flow lists (valid YAML), long lists one item a line."""
    flow = json.dumps(value)
    if not isinstance(value, list) or len(flow) <= 80:
        return [f"    {name}: {flow}"]
    return [f"    {name}:", *(f"      - {json.dumps(v)}" for v in value)]


def config_text(exe: str, old: str) -> str:
    """``config/<exe>.yaml``: ``old``'s leading comments, then every parameter with its default."""
    header = list(itertools.takewhile(lambda line: line.startswith("#"), old.splitlines()))
    lines = [*header, "/**:", "  ros__parameters:"]
    for p in (*node_parameters(node_modules()[exe]), *COMMON_PARAMETERS):
        live = "(live) " if p.live else ""
        lines += [f"    # {live}{p.description}", *_yaml_entry(p.name, p.default)]
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    """Every generated file -> its up-to-date text."""
    readme = ROOT / "README.md"
    files = {readme: readme_text(readme.read_text())}
    for exe in node_modules():
        path = ROOT / "config" / f"{exe}.yaml"
        files[path] = config_text(exe, path.read_text() if path.is_file() else f"# {exe} node.\n")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when README.md or config/ is out of date")
    args = parser.parse_args(argv)
    files = generated()
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is out of date: run python -m tools.gen_param_table",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path])
    return 0


if __name__ == "__main__":
    sys.exit(main())
