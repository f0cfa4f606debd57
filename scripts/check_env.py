"""Checks that this interpreter's environment is exactly the lock: every package the lock lists for
this Python at its locked version, nothing else, and ``pip check`` clean.

    .venv/bin/python scripts/check_env.py requirements.lock            # exit 1 on any difference
    .venv/bin/python scripts/check_env.py --extras requirements.lock   # names of packages to remove

Not counted as extra: the project itself (``pip install -e .``), the egg-info folders the ROS wheels
carry inside them (``rclpy``, ``std_msgs``... listed in a locked wheel's RECORD), the interface
packages setup_env.sh builds from third_party/ (``vision_msgs``), and the optional training group
(requirements-train.txt: torch and its dependencies) where a user installed it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

#: Installed by the project itself, not by the lock: the package and the interfaces built from third_party/.
OWN = {"trt-perception", *(canonicalize_name(d.name) for d in Path("third_party").iterdir() if d.is_dir())}
OVERRIDES = "requirements-overrides.txt"
#: Installed on demand beside the lock (training only); tolerated with what it pulls in.
OPTIONAL = "requirements-train.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(lock: Path) -> dict[str, str]:
    """``{name: version}`` of the lock's entries whose marker holds for this interpreter."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        m = _PIN.match(line)
        if m is None:
            continue
        name, version, marker = m.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version
    return pins


def installed() -> dict[str, str]:
    """Installed distributions, less those whose metadata folder another distribution's files hold."""
    dists = [d for d in metadata.distributions() if d.metadata["Name"]]
    embedded = {str(f).split("/", 1)[0] for d in dists for f in (d.files or ()) if ".egg-info/" in str(f)}
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in dists
        if Path(str(getattr(d, "_path", ""))).name not in embedded
    }


def dropped(overrides: Path) -> set[str]:
    """Requirements the lock drops on purpose: the overrides whose marker never holds."""
    names = set()
    for line in overrides.read_text().splitlines():
        req, _, marker = line.partition(";")
        if req.strip() and not req.lstrip().startswith("#") and "never" in marker:
            names.add(canonicalize_name(req.strip()))
    return names


def pip_check(allowed_missing: set[str]) -> list[str]:
    """``pip check``'s complaints, less "requires X, which is not installed" for a dropped X."""
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    missing = re.compile(r"requires (\S+), which is not installed")
    return [
        line
        for line in out.stdout.splitlines()
        if line.strip()
        and not line.startswith("No broken requirements")
        and not ((m := missing.search(line)) and canonicalize_name(m.group(1)) in allowed_missing)
    ]


def optional(group: Path) -> set[str]:
    """An optional group (requirements-train.txt: torch) and what it pulled in, where installed."""
    todo = [
        canonicalize_name(Requirement(line.split("#")[0]).name)
        for line in group.read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r]
    return seen


def extras(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    allowed = OWN | optional(Path(OPTIONAL))
    return sorted(n for n in have if n not in pins and n not in allowed)


def differences(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    out = [f"missing: {n}=={v}" for n, v in sorted(pins.items()) if n not in have]
    out += [
        f"version: {n} is {have[n]}, the lock says {v}"
        for n, v in sorted(pins.items())
        if n in have and have[n] != v
    ]
    out += [f"not in the lock: {n}=={have[n]}" for n in extras(pins, have)]
    return out


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    lock = Path(args[0] if args else "requirements.lock")
    pins, have = locked(lock), installed()
    if "--extras" in argv:
        print(" ".join(extras(pins, have)))
        return 0
    problems = differences(pins, have)
    problems += [f"pip check: {line}" for line in pip_check(dropped(lock.with_name(OVERRIDES)))]
    for p in problems:
        print(f"[check_env] {p}", file=sys.stderr)
    if problems:
        print(f"[check_env] the environment differs from {lock}: run scripts/setup_env.sh", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
