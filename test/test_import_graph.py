"""The package's import graph: no cycle between modules, imports point down the layers of
``/work/shared/DESIGN.md`` (README "Layout"), and the ROS-free cores never import rclpy.

Every import counts, module-level or inside a function (a lazy import is still a dependency), read
with ``ast`` without importing anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trt_perception"

#: Package -> the packages it may import. Cores first (bottom up), then the ROS layers and the CLI.
#: modelops sits under stages (the segmenter fuses its argmax on load) and never reaches up: the
#: accuracy-aware recipes get their task metric (``evaluation.task_metric``) from the caller.
CORES = ("io", "sim", "inference", "vision", "metrics", "stages", "pipeline", "modelops", "evaluation")
MAY_IMPORT: dict[str, set[str]] = {
    "io": set(),
    "sim": {"io"},
    "inference": {"io"},
    "vision": {"inference", "io"},
    "metrics": {"vision", "inference", "io"},
    "stages": {"modelops", "metrics", "vision", "inference", "io"},
    "pipeline": {"stages", "modelops", "metrics", "vision", "inference", "io"},
    "modelops": {"metrics", "vision", "inference", "io"},
    "evaluation": {"pipeline", "stages", "modelops", "metrics", "vision", "inference", "io"},
    "ros": {"pipeline", "stages", "modelops", "metrics", "vision", "inference", "io"},
    "nodes": {*CORES, "ros"},
    "commands": {*CORES, "ros", "nodes"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from pkg import mod`` names ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in modules)
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> every module it imports (inside the package or not)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, name, set(paths)) - {name} for name, path in paths.items()}


GRAPH = _graph()


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as the path that comes back to its start; [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in graph:
            return []
        path.append(node)
        for nxt in sorted(graph[node]):
            if cycle := visit(nxt):
                return cycle
        path.pop()
        done.add(node)
        return []

    for root in sorted(graph):
        if cycle := visit(root):
            return cycle
    return []


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def _imports_of(layer: str, wanted: Callable[[str], bool]) -> list[str]:
    """``module -> dependency`` for each import of a module of ``layer`` that ``wanted`` picks."""
    return sorted(
        f"{module} -> {dep}"
        for module, deps in GRAPH.items()
        if _layer(module) == layer
        for dep in deps
        if wanted(dep)
    )


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"d": {"a"}, "a": {"b"}, "b": {"c", "x"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert _cycle(GRAPH) == []


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_imports_point_down(layer: str) -> None:
    allowed = {layer, "", *MAY_IMPORT[layer]}
    assert (
        _imports_of(layer, lambda dep: dep.startswith("trt_perception.") and _layer(dep) not in allowed) == []
    )


def test_every_layer_is_listed() -> None:
    assert {_layer(m) for m in GRAPH} - {""} == set(MAY_IMPORT)


@pytest.mark.parametrize("layer", CORES)
def test_cores_are_ros_free(layer: str) -> None:
    assert _imports_of(layer, lambda dep: dep.split(".")[0] == "rclpy") == []


#: Imports of a second or more that only some runs need (measured here: onnx 1.4 s, scipy.optimize
#: 1.4 s, the rest more): a node that starts without using them must not pay for them at startup.
HEAVY = ("onnx", "scipy.optimize", "onnxconverter_common", "openvino", "motmetrics", "matplotlib", "torch")


def test_nodes_and_the_cli_start_without_heavy_imports() -> None:
    """Every node module and the CLI's parser, imported in a fresh interpreter, leave the ``HEAVY``
    modules out: each node used to pay ~2.7 s for onnx and scipy through the stage parameter sets."""
    nodes = sorted(p.stem for p in (PACKAGE / "nodes").glob("*.py") if not p.stem.startswith("_"))
    code = "; ".join(
        ["import sys", *(f"import trt_perception.nodes.{n}" for n in nodes), "import trt_perception.cli as c",
         "c.build_parser()", f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"]
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
