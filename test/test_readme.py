"""README.md stays true: its parameter tables match the nodes' declarations, its commands exist."""

from __future__ import annotations

import re

from conftest import ROOT

from tools import gen_param_table


def test_parameter_tables_match_declarations() -> None:
    assert gen_param_table.main(["--check"]) == 0, "run: .venv/bin/python -m tools.gen_param_table"


def test_every_node_and_launch_file_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for exe in gen_param_table.node_modules():
        assert f"`{exe}`" in readme, f"node {exe} missing from README.md"
    for launch in (ROOT / "launch").glob("*.launch.xml"):
        assert launch.name in readme, f"{launch.name} missing from README.md"


def test_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for script in re.findall(r"bash (scripts/\S+\.sh)", readme):
        assert (ROOT / script).is_file(), script
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci and "bash scripts/test.sh" in readme
