"""Shared fixtures: a real rclpy context on a private ROS domain, and nodes started as processes.

No fake rclpy anywhere: integration tests start the node's console script (the same one
``ros2 launch`` runs) with the same parameter files, and talk to it over Fast DDS.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ros_clients import probe_node

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
MODELS = ROOT / "models"

# One DDS domain per test run (pid-derived) keeps parallel runs on one machine apart; the shipped
# image profile gives nodes and the test process the same fast transport.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))  # 10-99: inside the valid 0-101
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
if not any(
    os.environ.get(k)
    for k in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")
):
    _profile = CONFIG / "fastdds_images.xml"
    if _profile.is_file():
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(_profile)  # Fast DDS 3 name (Kilted wheels)
    else:
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"


def ppocr_rec_model() -> Path:
    """The PP-OCRv4 recognition model shipped inside rapidocr-onnxruntime (skips without it)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rapidocr-onnxruntime is not installed (it carries the PP-OCRv4 rec model)")
    models = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*PP-OCRv4_rec*.onnx"))
    if not models:
        pytest.skip("no PP-OCRv4 rec .onnx inside rapidocr_onnxruntime/models")
    return models[0]


def executable(name: str) -> str:
    """A console script of this package, from the interpreter's own bin folder (the venv's)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script '{name}' is not installed (run scripts/setup_env.sh)")
    return found


class NodeProcess:
    """A node started as its own process; its output goes to a log file shown on failure."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def start_node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., NodeProcess]]:
    """``start_node("detector", params_file=CONFIG / "detector.yaml", params={...}, remap={...})``."""
    started: list[NodeProcess] = []

    def _start(
        exe: str,
        params_file: Path | str | None = None,
        params: dict[str, Any] | None = None,
        remap: dict[str, str] | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        args = [executable(exe), "--ros-args"]
        if name:
            args += ["-r", f"__node:={name}"]
        if params_file:
            args += ["--params-file", str(params_file)]
        for k, v in (params or {}).items():
            args += ["-p", f"{k}:={_param_literal(v)}"]
        for k, v in (remap or {}).items():
            args += ["-r", f"{k}:={v}"]
        log_path = tmp_path / f"{exe}-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=tmp_path
            )
        node = NodeProcess(proc, log_path)
        started.append(node)
        return node

    yield _start
    for node in started:
        node.stop()
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    if failed:
        for node in started:
            sys.stderr.write(f"\n----- {node.proc.args[0]} log -----\n{node.log()[-4000:]}\n")


def _param_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_param_literal(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v else "''"
    return str(v)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def ros_node() -> Iterator[Any]:
    """A real rclpy node in this test process (own context), with ``spin_until``."""
    with probe_node() as node:
        yield node


# ----- sample data (scenes helper): data/ generated by tools/make_samples.py when missing or stale -----

if str(ROOT) not in sys.path:  # tools/ (generators and trainers, not installed) is imported by data tests
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class SampleData:
    root: Path
    val_dir: Path
    val_coco: Path
    images_dir: Path
    masks_dir: Path
    video: Path
    bag: Path
    bag_coco: Path


def _samples_version() -> str:
    """Hash of the generator sources: data/ is rebuilt whenever the generator changes."""
    digest = hashlib.sha256()
    for src in sorted([*(ROOT / "tools" / "synth").glob("*.py"), ROOT / "tools" / "make_samples.py"]):
        digest.update(src.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def sample_data() -> SampleData:
    """The shared sample data under ``data/`` (val COCO set, video, bag), generated once if missing."""
    import fcntl

    root = ROOT / "data"
    root.mkdir(exist_ok=True)
    stamp = root / ".samples_version"
    version = _samples_version()
    with open(root / ".samples_lock", "w") as lock:  # parallel pytest runs generate it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != version:
            subprocess.run(
                [sys.executable, "-m", "tools.make_samples", "--out", str(root)], cwd=ROOT, check=True
            )
            stamp.write_text(version)
    val = root / "val"
    return SampleData(
        root=root,
        val_dir=val,
        val_coco=val / "annotations.json",
        images_dir=val / "images",
        masks_dir=val / "masks",
        video=root / "sample_scene.mp4",
        bag=root / "sample_bag",
        bag_coco=root / "sample_bag_gt.json",
    )
