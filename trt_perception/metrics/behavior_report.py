"""Write a behavior report: JSON, a one-row CSV summary, the trajectory CSV and a PNG plot.

The PNG shows the driven trajectory over the reference lap (matplotlib, Agg backend, no display).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..io.files import atomic_write
from .behavior import BehaviorReport


def write_outputs(
    report: BehaviorReport,
    xy: np.ndarray,
    reference: np.ndarray,
    out_dir: str | Path,
    prefix: str = "behavior",
    extra: dict[str, object] | None = None,
    stamps: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write ``<prefix>.csv``, ``<prefix>_trajectory.csv``, ``<prefix>.png`` and then ``<prefix>.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {**(extra or {}), **report.as_dict()}
    paths = {
        "json": out / f"{prefix}.json",
        "csv": out / f"{prefix}.csv",
        "trajectory": out / f"{prefix}_trajectory.csv",
        "png": out / f"{prefix}.png",
    }
    flat = {k: ("; ".join(v) if isinstance(v, list) else v) for k, v in summary.items()}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat))
        w.writeheader()
        w.writerow(flat)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    with open(paths["trajectory"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "x", "y"])
        t = (
            np.asarray(stamps, np.float64)
            if stamps is not None and len(stamps) == len(xy)
            else np.arange(len(xy))
        )
        w.writerows((f"{a:.4f}", f"{b:.4f}", f"{c:.4f}") for a, (b, c) in zip(t, xy))
    plot_trajectory(xy, reference, report, paths["png"], title=str((extra or {}).get("circuit", "")))
    # JSON last and atomically: once it exists, the whole report does
    atomic_write(paths["json"], json.dumps(summary, indent=2, default=str))
    return paths


def plot_trajectory(
    xy: np.ndarray, reference: np.ndarray, report: BehaviorReport, path: Path, title: str = ""
) -> None:
    import matplotlib  # lazy: ~1.5 s to import, for the optional plot alone

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen

    ref = np.asarray(reference, np.float64).reshape(-1, 2)
    span = np.ptp(np.vstack([ref, xy]) if len(xy) else ref, axis=0) + 1e-6
    # the figure follows the circuit's aspect ratio (a long circuit is not drawn in a square)
    fig, ax = plt.subplots(figsize=(9, float(np.clip(9 * span[1] / span[0], 3.0, 9.0)) + 1.2), dpi=100)
    loop = np.vstack([ref, ref[:1]])
    ax.plot(loop[:, 0], loop[:, 1], color="0.6", lw=6, alpha=0.5, label="reference lap")
    if len(xy):
        ax.plot(xy[:, 0], xy[:, 1], color="tab:red", lw=1.2, label="driven")
        ax.plot(xy[0, 0], xy[0, 1], "o", color="tab:green", label="start")
        ax.plot(xy[-1, 0], xy[-1, 1], "x", color="k", label="end")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    lap = f"lap {report.lap_time_s:.1f} s" if report.lap_time_s is not None else "lap not completed"
    ax.set_title(
        f"{title} {report.percentage_completed:.1f}% completed, {lap}\n"
        f"deviation mean {report.position_deviation_mean_m:.2f} m, max {report.position_deviation_max_m:.2f} m, "
        f"avg speed {report.average_speed_mps:.2f} m/s"
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
