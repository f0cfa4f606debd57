"""Static checks of every launch/*.launch.xml and every config/<node>.yaml (no `launch` package here).

Launch files: each <node> names a console script of setup.py (or a package declared in package.xml),
each parameter file exists and holds only parameters the node declares (its module's PARAMETERS +
COMMON_PARAMETERS, or rclpy's own ``qos_overrides.*``), each inline <param> is declared, each
$(find-pkg-share ...) / $(var ...) resolves, each <include> exists, and each lifecycle node sets
``exit_on_error`` true (a failed configure exits, so launch can respawn it). Config files: every
declared parameter with its default, nothing else.
"""

from __future__ import annotations

import ast
import importlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from trt_perception.ros.node_base import COMMON_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "trt_perception"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.xml"))

#: Every node must have its module and its config (False only while nodes are still being written:
#: then a missing one is skipped).
STRICT_NODES = True

#: Parameters every rclpy node declares itself.
ROS_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
#: Declared by rclpy for each publisher made with QoSOverridingOptions (qos_overrides./topic.publisher.depth).
QOS_OVERRIDES = "qos_overrides."
#: Substitutions of ROS 2 launch XML this test can check (others would be typos).
KNOWN_SUBSTITUTIONS = {
    "var",
    "find-pkg-share",
    "find-pkg-prefix",
    "env",
    "eval",
    "dirname",
    "filename",
    "anon",
    "command",
    "find-exec",
    "not",
    "and",
    "or",
    "equals",
    "not-equals",
}
_SUBST = re.compile(r"\$\(([^()$]*)\)")


def _nodes() -> dict[str, str]:
    """setup.py's NODES mapping (console script -> module under trt_perception.nodes), read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "NODES" for t in stmt.targets):
            return ast.literal_eval(stmt.value)
    raise AssertionError("setup.py has no NODES mapping")


NODES = _nodes()


def _package_dependencies() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "test_depend")
    return {e.text.strip() for t in tags for e in root.iter(t) if e.text}


def _declared(module: str) -> dict[str, Any] | None:
    """Declared parameters (name -> default) of node module ``module``; None while it does not exist."""
    try:
        mod = importlib.import_module(f"{PACKAGE}.nodes.{module}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{PACKAGE}.nodes.{module}",):
            return None
        raise
    params = tuple(getattr(mod, "PARAMETERS", ())) + COMMON_PARAMETERS
    return {p.name: p.default for p in params}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _yaml_parameters(path: Path, node_name: str) -> dict[str, Any]:
    """ros__parameters of ``path`` that apply to ``node_name`` (``/**`` wildcards and the node's own name)."""
    doc = yaml.safe_load(path.read_text()) or {}
    assert isinstance(doc, dict), f"{path}: not a ROS 2 parameter file"
    params: dict[str, Any] = {}
    for key, section in doc.items():
        assert isinstance(section, dict) and "ros__parameters" in section, (
            f"{path}: '{key}' has no ros__parameters"
        )
        name = str(key).rstrip("/").split("/")[-1]
        if key in ("/**", "**") or name in (node_name, "**"):
            params.update(_flatten(section["ros__parameters"] or {}))
    return params


class LaunchChecker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = ET.parse(path).getroot()
        self.args: dict[str, str | None] = {}
        self.errors: list[str] = []
        self.deps = _package_dependencies()

    def error(self, message: str) -> None:
        self.errors.append(f"{self.path.name}: {message}")

    def resolve(self, text: str, where: str) -> str | None:
        """``text`` with its substitutions resolved (None where a value is only known at launch time)."""
        unresolved = False
        while True:
            m = _SUBST.search(text)
            if m is None:
                return None if unresolved else text
            parts = m.group(1).split()
            name, rest = (parts[0], parts[1:]) if parts else ("", [])
            value: str | None = ""
            if name not in KNOWN_SUBSTITUTIONS:
                self.error(f"{where}: unknown substitution $({m.group(1)})")
            elif name == "var":
                if not rest or rest[0] not in self.args:
                    self.error(f"{where}: $(var {' '.join(rest)}) is not a declared <arg>/<let>")
                value = self.args.get(rest[0]) if rest else None
            elif name in ("find-pkg-share", "find-pkg-prefix"):
                pkg = rest[0] if rest else ""
                if pkg == PACKAGE:
                    value = str(ROOT)  # share/trt_perception holds launch/, config/, models/ as in the tree
                else:
                    if pkg not in self.deps:
                        self.error(f"{where}: $({name} {pkg}) names a package not declared in package.xml")
                    value = None
            elif name == "dirname":
                value = str(self.path.parent)
            else:
                value = None
            if value is None:
                unresolved = True
                value = "<unresolved>"
            text = text[: m.start()] + value + text[m.end() :]

    def check_substitutions(self, element: ET.Element) -> None:
        for key, val in element.attrib.items():
            if "$(" in val:
                self.resolve(val, f"<{element.tag} {key}=...>")

    def run(self) -> list[str]:
        if self.root.tag != "launch":
            self.error(f"root element is <{self.root.tag}>, expected <launch>")
        self._walk(self.root)
        return self.errors

    def _walk(self, element: ET.Element) -> None:
        for child in element:
            if child.tag in ("arg", "let"):
                name = child.get("name")
                if not name:
                    self.error(f"<{child.tag}> without a name")
                    continue
                raw = child.get("default") if child.tag == "arg" else child.get("value")
                self.args[name] = None if raw is None else self.resolve(raw, f"<{child.tag} name='{name}'>")
                continue
            self.check_substitutions(child)
            if child.tag == "node":
                self._check_node(child)
            elif child.tag == "include":
                target = self.resolve(child.get("file", ""), "<include file>")
                if target is not None and not Path(target).is_file():
                    self.error(f"<include file='{child.get('file')}'> does not exist")
                for sub in child:
                    self.check_substitutions(sub)
            else:
                self._walk(child)

    def _check_node(self, node: ET.Element) -> None:
        pkg, exe = node.get("pkg", ""), node.get("exec", "")
        for sub in node.iter():
            self.check_substitutions(sub)
        if pkg != PACKAGE:
            if pkg not in self.deps:
                self.error(f"<node pkg='{pkg}'> is not a dependency in package.xml")
            return
        if exe not in NODES:
            self.error(f"<node exec='{exe}'>: no such console script in setup.py ({', '.join(NODES)})")
            return
        declared = _declared(NODES[exe])
        node_name = node.get("name", exe)
        if declared is not None and "exit_on_error" in declared:
            inline = {p.get("name"): p.get("value") for p in node.findall("param") if p.get("name")}
            if inline.get("exit_on_error") != "true":
                self.error(f"{exe}: a lifecycle node: set <param name='exit_on_error' value='true'/>")
        for param in node.findall("param"):
            if param.get("from"):
                target = self.resolve(param.get("from", ""), f"<param from> of {exe}")
                if target is None:
                    self.error(f"{exe}: parameter file '{param.get('from')}' cannot be resolved statically")
                    continue
                path = Path(target)
                if not path.is_file():
                    self.error(f"{exe}: parameter file {path} does not exist")
                    continue
                names = set(_yaml_parameters(path, node_name))
                where = f"file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
            else:
                names, where = {param.get("name", "")}, "inline <param>"
            if declared is None:
                continue  # module not written yet: only file existence is checked
            unknown = sorted(
                n
                for n in names - set(declared) - ROS_BUILTIN_PARAMETERS
                if n and not n.startswith(QOS_OVERRIDES)
            )
            if unknown:
                self.error(f"{exe}: {where} sets undeclared parameter(s) {unknown}")


def test_there_are_launch_files() -> None:
    assert (ROOT / "launch" / "camera.launch.xml") in LAUNCH_FILES


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file(launch_file: Path) -> None:
    errors = LaunchChecker(launch_file).run()
    assert not errors, "\n".join(errors)


def test_checker_catches_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.launch.xml"
    bad.write_text(
        """<launch>
  <arg name="source" default="0"/>
  <node pkg="trt_perception" exec="camera_bridgee" name="x"/>
  <node pkg="trt_perception" exec="camera_bridge" name="camera_bridge">
    <param from="$(find-pkg-share trt_perception)/config/missing.yaml"/>
    <param name="qos_overrides./camera/image_raw.publisher.reliability" value="reliable"/>
    <param name="sourc" value="$(var source)"/>
    <param name="frame_id" value="$(var frame)"/>
  </node>
  <node pkg="not_a_dependency" exec="x"/>
</launch>"""
    )
    text = "\n".join(LaunchChecker(bad).run())
    assert "camera_bridgee" in text
    assert "missing.yaml does not exist" in text
    assert "undeclared parameter(s) ['sourc']" in text
    assert "$(var frame) is not a declared" in text
    assert "not_a_dependency" in text
    assert "camera_bridge: a lifecycle node: set <param name='exit_on_error'" in text
    assert "qos_overrides" not in text  # rclpy's own parameters are fine


@pytest.mark.parametrize("exe", sorted(NODES))
def test_config_holds_every_parameter_with_its_default(exe: str) -> None:
    module = NODES[exe]
    declared = _declared(module)
    path = ROOT / "config" / f"{exe}.yaml"
    if declared is None or not path.is_file():
        missing = "module" if declared is None else f"config/{exe}.yaml"
        if STRICT_NODES:
            pytest.fail(f"{exe}: {missing} does not exist")
        pytest.skip(f"{exe}: {missing} does not exist yet")
    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["/**"], f"config/{exe}.yaml: use the '/**' wildcard section only"
    values = _flatten(doc["/**"]["ros__parameters"])
    missing_keys = sorted(set(declared) - set(values))
    extra = sorted(set(values) - set(declared))
    assert not missing_keys, f"config/{exe}.yaml lacks declared parameter(s) {missing_keys}"
    assert not extra, f"config/{exe}.yaml sets undeclared parameter(s) {extra}"
    wrong = {
        k: (values[k], d)
        for k, d in declared.items()
        if values[k] != d or (type(values[k]) is not type(d) and not (isinstance(d, list) and not d))
    }
    assert not wrong, f"config/{exe}.yaml values differ from the declared defaults (yaml, default): {wrong}"
