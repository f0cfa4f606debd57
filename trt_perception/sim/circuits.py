"""Closed circuits as a centre-line polyline plus a track width, and their reference laps.

Two built-in circuits, shaped after BehaviorMetrics' Gazebo follow-line worlds:

* ``simple``: a ~250 m loop with two long bends and one S (like ``SimpleCircuit``);
* ``montreal``: a ~560 m long, narrow circuit with a hairpin at one end, chicanes and a fast back
  straight (like the ``Montreal`` / Gilles Villeneuve world).

Each is a periodic centripetal Catmull-Rom spline through a few control points, resampled at uniform
arc length. The reference lap (the "perfect lap" of BehaviorMetrics) is the centre line sampled every
0.5 m, written as ``x,y`` CSV under ``trt_perception/sim/circuits/`` by ``tools/train_pilotnet.py
--write-references`` and also reproducible from code, so a missing CSV is never fatal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..io.bags import odometry_xy

CIRCUIT_DIR = Path(__file__).resolve().parent / "circuits"

#: Control points (metres, counter-clockwise) of the built-in circuits.
_CONTROL_POINTS: dict[str, list[tuple[float, float]]] = {
    "simple": [
        (0, 0),
        (30, -2),
        (55, 2),
        (72, 14),
        (75, 32),
        (64, 46),
        (44, 50),
        (30, 42),
        (16, 34),
        (0, 40),
        (-18, 44),
        (-32, 34),
        (-34, 16),
        (-22, 3),
    ],
    "montreal": [
        (0, 0),
        (50, -4),
        (100, -2),
        (150, 4),
        (195, 6),
        (222, 14),
        (230, 30),
        (218, 42),
        (196, 40),
        (180, 32),
        (160, 38),
        (130, 44),
        (112, 36),
        (94, 44),
        (60, 48),
        (30, 44),
        (14, 52),
        (-4, 50),
        (-18, 40),
        (-20, 22),
        (-12, 8),
    ],
}


@dataclass(frozen=True)
class Circuit:
    """A closed track: ``centerline`` [N, 2] (not repeating the first point), width in metres."""

    name: str
    centerline: np.ndarray
    width: float = 7.0
    spacing: float = 0.25
    _cum: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seg = np.linalg.norm(np.diff(self.closed(), axis=0), axis=1)
        object.__setattr__(self, "_cum", np.concatenate([[0.0], np.cumsum(seg)]))

    def closed(self) -> np.ndarray:
        return np.vstack([self.centerline, self.centerline[:1]])

    @property
    def length(self) -> float:
        return float(self._cum[-1])

    def heading(self) -> np.ndarray:
        """Tangent direction (rad) at each centre-line point."""
        d = np.roll(self.centerline, -1, axis=0) - np.roll(self.centerline, 1, axis=0)
        return np.arctan2(d[:, 1], d[:, 0])

    def curvature(self) -> np.ndarray:
        """Signed curvature (1/m, positive turning left) at each centre-line point."""
        h = np.unwrap(self.heading())
        dh = (np.roll(h, -1) - np.roll(h, 1) + np.pi) % (2 * np.pi) - np.pi
        return dh / (2 * self.spacing)

    def start_pose(self, reverse: bool = False) -> tuple[float, float, float]:
        """Pose (x, y, yaw) on the centre line at the start point, facing the driving direction."""
        yaw = float(self.heading()[0]) + (np.pi if reverse else 0.0)
        return float(self.centerline[0, 0]), float(self.centerline[0, 1]), yaw

    def nearest(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre-line point and the distance to it, for points ``[M, 2]``."""
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        d2 = ((xy[:, None, :] - self.centerline[None, :, :]) ** 2).sum(-1)
        idx = d2.argmin(1)
        return idx, np.sqrt(d2[np.arange(len(xy)), idx])

    def reference(self, spacing: float = 0.5) -> np.ndarray:
        """The reference ("perfect") lap: the centre line resampled every ``spacing`` metres."""
        return resample_closed(self.centerline, spacing)


def catmull_rom_closed(points: np.ndarray, samples_per_segment: int = 200) -> np.ndarray:
    """Periodic centripetal Catmull-Rom spline through ``points`` (no cusps or self-intersections)."""
    p = np.asarray(points, np.float64)
    n = len(p)
    out = []
    u = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    for i in range(n):
        p0, p1, p2, p3 = p[(i - 1) % n], p[i], p[(i + 1) % n], p[(i + 2) % n]
        t0 = 0.0
        t1 = t0 + np.linalg.norm(p1 - p0) ** 0.5
        t2 = t1 + np.linalg.norm(p2 - p1) ** 0.5
        t3 = t2 + np.linalg.norm(p3 - p2) ** 0.5
        t = t1 + u * (t2 - t1)
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.vstack(out)


def resample_closed(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` metres of arc length along the closed ``polyline``."""
    closed = np.vstack([polyline, polyline[:1]])
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    n = max(round(cum[-1] / spacing), 3)
    s = np.linspace(0.0, cum[-1], n, endpoint=False)
    return np.stack([np.interp(s, cum, closed[:, 0]), np.interp(s, cum, closed[:, 1])], axis=1)


@lru_cache(maxsize=8)
def get_circuit(name: str, width: float = 7.0) -> Circuit:
    """A built-in circuit by name (``simple``, ``montreal``)."""
    try:
        control = np.asarray(_CONTROL_POINTS[name], np.float64)
    except KeyError:
        raise ValueError(f"unknown circuit '{name}'; choose one of {', '.join(_CONTROL_POINTS)}") from None
    spacing = 0.25
    return Circuit(name, resample_closed(catmull_rom_closed(control), spacing), width=width, spacing=spacing)


def circuit_names() -> list[str]:
    return list(_CONTROL_POINTS)


def reference_csv_path(name: str) -> Path:
    return CIRCUIT_DIR / f"{name}_reference.csv"


def write_reference_csv(path: str | Path, points: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y"])
        w.writerows([f"{x:.4f}", f"{y:.4f}"] for x, y in points)


def read_reference_csv(path: str | Path) -> np.ndarray:
    """``x,y`` rows (a header line is skipped; extra columns ignored) -> float64 [N, 2]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference lap CSV not found: {path}")
    rows: list[tuple[float, float]] = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                rows.append((float(row[0]), float(row[1])))
            except (ValueError, IndexError):
                if i == 0:
                    continue  # header
                raise ValueError(f"{path}:{i + 1}: expected 'x,y' numbers, got {row!r}") from None
    if len(rows) < 3:
        raise ValueError(f"{path}: a reference lap needs at least 3 points, found {len(rows)}")
    return np.asarray(rows, np.float64)


def load_reference(spec: str, topic: str | None = None) -> np.ndarray:
    """A reference lap from a circuit name (``simple``), a CSV path, or a bag of odometry: rosbag2,
    or a ROS 1 ``.bag`` like BehaviorMetrics' perfect laps (``topic``: its odometry topic, e.g.
    ``/F1ROS/odom``; None takes the bag's only one). Bags are read with ``rosbags``."""
    if spec in _CONTROL_POINTS:
        csv_path = reference_csv_path(spec)
        return read_reference_csv(csv_path) if csv_path.is_file() else get_circuit(spec).reference()
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        return read_reference_csv(path)
    if path.is_dir() or path.suffix in (".mcap", ".db3", ".bag"):  # .bag: BehaviorMetrics' ROS 1 perfect laps
        return odometry_xy(path, topic)
    raise ValueError(
        f"reference '{spec}' is neither a circuit name ({', '.join(_CONTROL_POINTS)}), a CSV nor a rosbag2"
    )
