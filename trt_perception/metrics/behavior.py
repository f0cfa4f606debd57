"""Behavior metrics of a driving run against a reference lap, as BehaviorMetrics reports them (ROS-free).

Inputs are plain arrays (``RunRecord``): odometry positions with their simulated stamps and wall
arrival times, ``/clock`` samples, the brain's (v, w) commands, its per-iteration inference times and
camera frame counts. ``evaluate_run`` turns them into a ``BehaviorReport``. Formulas (N reference
checkpoints r_k, driven poses p_i at simulated times t_i):

* completed distance  D = sum_i |p_{i+1} - p_i|  (metres, all poses after cleaning).
* experiment time     T_sim = t_last - t_first from ``/clock`` (or odometry stamps); T_real from wall clock.
* average speed       D / T_sim  (D / T_real when there is no ``/clock``; ``time_base`` says which).
* percentage completed (BehaviorMetrics ``metrics_gazebo.get_percentage_completed``): start at the
  checkpoint nearest p_0 with ``reached = 1``; walk the poses in order: while the current pose is within
  ``radius`` (5 m) of the next checkpoint in the driving direction, count it and move to the one after;
  otherwise take the next pose. Done for both directions, the better one kept.
  ``percentage = 100 * reached / N`` (above 100 after more than one lap). ``lap_completed`` = reached >= N.
* lap time            t_L - t_0, t_L the stamp of the pose at which ``reached`` first equals N.
* progress            metres along the reference actually driven past: every pose projected on its
  nearest checkpoint, index steps unwrapped (laps count), furthest point kept.
* position deviation  for every checkpoint covered by the run (those the progress has passed, from the
  start checkpoint in the driving direction; all of them after a full lap), d_k = distance from
  r_k to the driven path (nearest pose, refined on its two adjacent segments). ``mean`` and ``max`` of
  d_k in metres. Beside it ``bm_score = mean_k 1000**d_k`` and ``bm_total = sum_k 1000**d_k``: what
  BehaviorMetrics' ``metrics_gazebo.py`` prints as "Position deviation MAE"/"total error". That score is
  NOT in metres (1000**d is 1 at d = 0, 2 at d = 0.1 m, 31.6 at 0.5 m) and is what the published tables
  (e.g. 4.94 for TF-TRT FP32 on SimpleCircuit) hold.
* brain iterations    K = number of commands; frequency K / T_real (real time) and K / T_sim (simulated).
* mean inference time mean of the per-iteration inference times without the first and last 10
  samples (as BehaviorMetrics trims them).
* real-time factor    (clock_last - clock_first) / (wall at clock_last - wall at clock_first).
* frame rate          camera frames received by the brain / T_real.
* suddenness          mean_j |(v, w)_{j+1} - (v, w)_j|_2 over consecutive commands.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

CHECKPOINT_RADIUS_M = 5.0
TRIM_SAMPLES = 10


# --------------------------------------------------------------------------- input cleaning
def odometry_order(stamps: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Indices that sort samples by stamp with repeated stamps dropped (the last one of a stamp wins).

    Returns ``indices, out_of_order, duplicates``: how many samples arrived before an older one,
    and how many were dropped as duplicates.
    """
    stamps = np.asarray(stamps)
    if len(stamps) == 0:
        return np.zeros(0, np.int64), 0, 0
    out_of_order = int(np.count_nonzero(np.diff(stamps) < 0))
    order = np.argsort(stamps, kind="stable")
    s = stamps[order]
    keep = np.ones(len(s), bool)
    keep[:-1] = s[1:] != s[:-1]  # keep the last of each run of equal stamps
    return order[keep], out_of_order, int(np.count_nonzero(~keep))


def clean_odometry(stamps: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``stamps, xy`` sorted by stamp without duplicates, plus the out-of-order and duplicate counts."""
    idx, out_of_order, dups = odometry_order(stamps)
    return np.asarray(stamps)[idx], np.asarray(xy, np.float64).reshape(-1, 2)[idx], out_of_order, dups


# --------------------------------------------------------------------------- geometry
def path_length(xy: np.ndarray) -> float:
    """Sum of the segment lengths of a polyline [N, 2]."""
    xy = np.asarray(xy, np.float64)
    if len(xy) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


def distances_to_path(queries: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Distance from each query point [M, 2] to the polyline ``path`` [N, 2] (metres, float64).

    An exact k-d tree (OpenCV's FLANN ``KDTreeSingleIndex``, unlimited checks) finds the nearest
    vertex; the distance is then refined against the two segments around it, so sparse odometry is
    not penalised for its sampling. 100k poses x 10k checkpoints take about 15 ms.
    """
    q = np.asarray(queries, np.float64).reshape(-1, 2)
    p = np.asarray(path, np.float64).reshape(-1, 2)
    if len(p) == 0:
        raise ValueError("the driven path is empty")
    if len(p) == 1:
        return np.linalg.norm(q - p[0], axis=1)
    # centre before float32 so large map coordinates keep centimetre precision in the tree
    centre = p.mean(axis=0)
    index = cv2.flann_Index(
        np.ascontiguousarray(p - centre, np.float32), {"algorithm": 4, "leaf_max_size": 16}
    )
    nearest, _ = index.knnSearch(np.ascontiguousarray(q - centre, np.float32), 1, params={"checks": -1})
    j = nearest[:, 0].astype(np.int64)
    best = np.linalg.norm(q - p[j], axis=1)
    for lo, hi in ((j - 1, j), (j, j + 1)):
        valid = (lo >= 0) & (hi < len(p))
        a, b = np.clip(lo, 0, len(p) - 1), np.clip(hi, 0, len(p) - 1)
        seg = p[b] - p[a]
        length2 = (seg**2).sum(axis=1)
        t = np.where(length2 > 0, ((q - p[a]) * seg).sum(axis=1) / np.where(length2 > 0, length2, 1), 0.0)
        proj = p[a] + np.clip(t, 0.0, 1.0)[:, None] * seg
        d = np.linalg.norm(q - proj, axis=1)
        best = np.where(valid, np.minimum(best, d), best)
    return best


# --------------------------------------------------------------------------- percentage completed
@dataclass(frozen=True)
class Completion:
    percentage: float
    reached: int
    direction: int  # +1 along increasing reference index, -1 against it
    start_index: int
    lap_pose_index: int  # pose index at which the lap completed, -1 if it did not

    @property
    def lap_completed(self) -> bool:
        return self.lap_pose_index >= 0


def _walk(xy: np.ndarray, ref: np.ndarray, start: int, step: int, radius: float) -> tuple[int, int]:
    """BehaviorMetrics' checkpoint walk in one direction: (checkpoints reached, pose index of the lap)."""
    n = len(ref)
    r2 = radius * radius
    reached, k, i, lap = 1, (start + step) % n, 1, -1
    xs, ys = xy[:, 0], xy[:, 1]
    chunk = 256
    while i < len(xy):
        rx, ry = ref[k]
        dx, dy = xs[i] - rx, ys[i] - ry
        if dx * dx + dy * dy < r2:
            reached += 1
            if reached == n and lap < 0:
                lap = i
            k = (k + step) % n
            continue
        # vectorised search for the next pose within the radius of checkpoint k
        found = -1
        j = i + 1
        while j < len(xy):
            d2 = (xs[j : j + chunk] - rx) ** 2 + (ys[j : j + chunk] - ry) ** 2
            hit = np.flatnonzero(d2 < r2)
            if len(hit):
                found = j + int(hit[0])
                break
            j += chunk
            chunk = min(chunk * 2, 65536)
        if found < 0:
            break
        i = found
        chunk = 256
    return reached, lap


def percentage_completed(
    xy: np.ndarray, reference: np.ndarray, radius: float = CHECKPOINT_RADIUS_M
) -> Completion:
    """Checkpoints of ``reference`` passed within ``radius`` in order, better of both directions."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    ref = np.asarray(reference, np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return Completion(0.0, 0, 1, 0, -1)
    start = int(np.argmin(((ref - xy[0]) ** 2).sum(axis=1)))
    best = None
    for step in (1, -1):
        reached, lap = _walk(xy, ref, start, step, radius)
        if best is None or reached > best[0]:
            best = (reached, lap, step)
    assert best is not None
    reached, lap, step = best
    return Completion(100.0 * reached / len(ref), reached, step, start, lap)


def nearest_indices(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the nearest of ``targets`` [N, 2] for every point [M, 2] (exact k-d tree)."""
    t = np.asarray(targets, np.float64).reshape(-1, 2)
    centre = t.mean(axis=0)
    index = cv2.flann_Index(
        np.ascontiguousarray(t - centre, np.float32), {"algorithm": 4, "leaf_max_size": 16}
    )
    q = np.ascontiguousarray(np.asarray(points, np.float64).reshape(-1, 2) - centre, np.float32)
    nearest, _ = index.knnSearch(q, 1, params={"checks": -1})
    return nearest[:, 0].astype(np.int64)


def progress_checkpoints(xy: np.ndarray, reference: np.ndarray, completion: Completion) -> int:
    """How far along the reference the run got, in checkpoints from the start, laps unwrapped.

    Each pose is projected on its nearest checkpoint; the index steps (wrapped to half a lap, signed
    by the driving direction) are summed and the furthest point reached is kept.
    """
    n = len(reference)
    if len(xy) < 2:
        return 0
    idx = nearest_indices(xy, reference)
    steps = (np.diff(idx) * completion.direction + n // 2) % n - n // 2
    start_offset = ((idx[0] - completion.start_index) * completion.direction + n // 2) % n - n // 2
    return int(max(start_offset + np.cumsum(steps).max(initial=0), 0))


def covered_checkpoints(xy: np.ndarray, reference: np.ndarray, completion: Completion) -> np.ndarray:
    """Indices of the reference checkpoints the run drove past (see the module docstring).

    Measured by the projected progress, not by the 5 m checkpoint walk: the walk counts the last
    checkpoints of a lap up to 5 m before the car reaches them, and a run stopped right then would
    be charged metres of deviation for the stretch it never drove.
    """
    n = len(reference)
    span = min(progress_checkpoints(xy, reference, completion), n - 1)
    return (completion.start_index + completion.direction * np.arange(span + 1)) % n


@dataclass(frozen=True)
class Deviation:
    mean_m: float
    max_m: float
    bm_score: float
    bm_total: float
    checkpoints: int


def position_deviation(reference: np.ndarray, xy: np.ndarray, indices: np.ndarray | None = None) -> Deviation:
    """Distances (m) from the reference checkpoints (``indices`` of them) to the driven path."""
    ref = np.asarray(reference, np.float64).reshape(-1, 2)
    if indices is not None:
        ref = ref[indices]
    if len(ref) == 0 or len(xy) == 0:
        return Deviation(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    d = distances_to_path(ref, xy)
    with np.errstate(over="ignore"):
        score = np.power(1000.0, d)
    return Deviation(float(d.mean()), float(d.max()), float(score.mean()), float(score.sum()), len(ref))


# --------------------------------------------------------------------------- timing
def trimmed_mean(values: np.ndarray | list[float], trim: int = TRIM_SAMPLES) -> float:
    """Mean without the first and last ``trim`` samples (all samples when there are too few)."""
    v = np.asarray(values, np.float64)
    if len(v) > 2 * trim:
        v = v[trim : len(v) - trim]
    return float(v.mean()) if len(v) else float("nan")


def rate(count: int, seconds: float | None) -> float:
    return count / seconds if seconds and seconds > 0 else float("nan")


def suddenness(cmd: np.ndarray) -> float:
    """Mean L2 distance between consecutive (v, w) commands."""
    c = np.asarray(cmd, np.float64).reshape(-1, 2)
    if len(c) < 2:
        return float("nan")
    return float(np.linalg.norm(np.diff(c, axis=0), axis=1).mean())


# --------------------------------------------------------------------------- whole run
@dataclass
class RunRecord:
    """Everything a run produced; times in seconds (floats).

    ``odom_stamp`` is the odometry header stamp (simulated time under ``use_sim_time``), ``odom_wall``
    its wall-clock arrival. ``clock_sim``/``clock_wall`` are ``/clock`` samples (empty without a
    clock). ``cmd_wall`` / ``cmd`` the brain's commands, ``inference_ms`` its per-iteration inference
    times, ``frames`` the camera frames it received over ``frames_wall_span`` seconds.
    """

    odom_stamp: np.ndarray
    odom_wall: np.ndarray
    xy: np.ndarray
    clock_sim: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clock_wall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cmd_wall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cmd: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    inference_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frames: int = 0
    frames_wall_span: float = 0.0


def simulated_run(
    t: np.ndarray, xy: np.ndarray, cmd: np.ndarray, inference_ms: np.ndarray | None = None
) -> RunRecord:
    """The run of a drive in the light simulator (``sim.world.drive``): one time base (simulated time
    stands for wall time and /clock), a command per pose but the last."""
    return RunRecord(
        odom_stamp=t,
        odom_wall=t,
        xy=xy,
        clock_sim=t,
        clock_wall=t,
        cmd_wall=t[:-1],
        cmd=cmd[:-1],
        inference_ms=np.zeros(0) if inference_ms is None else inference_ms,
    )


@dataclass
class BehaviorReport:
    time_base: str
    reference_checkpoints: int
    reference_length_m: float
    poses: int
    odometry_out_of_order: int
    odometry_duplicates: int
    completed_distance_m: float
    experiment_sim_time_s: float | None
    experiment_real_time_s: float
    average_speed_mps: float
    percentage_completed: float
    progress_m: float
    lap_completed: bool
    lap_time_s: float | None
    direction: int
    position_deviation_mean_m: float
    position_deviation_max_m: float
    position_deviation_bm_score: float
    position_deviation_bm_total: float
    deviation_checkpoints: int
    brain_iterations: int
    brain_iteration_frequency_real_hz: float
    brain_iteration_frequency_sim_hz: float | None
    mean_inference_time_ms: float
    real_time_factor: float | None
    frame_rate_hz: float
    suddenness: float
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


def _span(t: np.ndarray) -> float:
    return float(t[-1] - t[0]) if len(t) >= 2 else 0.0


def evaluate_run(
    run: RunRecord, reference: np.ndarray, radius: float = CHECKPOINT_RADIUS_M
) -> BehaviorReport:
    """All behavior metrics of one run (see the module docstring for each formula)."""
    ref = np.asarray(reference, np.float64).reshape(-1, 2)
    warnings: list[str] = []
    has_clock = len(run.clock_sim) >= 2
    if not has_clock:
        warnings.append("no /clock: simulated-time metrics unavailable, times are wall-clock (real time)")
    # Header stamps order the poses (late or repeated messages are fixed by them) unless they carry
    # no information (all equal, e.g. unstamped odometry): then arrival order. Times come from the
    # stamps under /clock, from the wall-clock arrival of the same samples without it.
    stamps = np.asarray(run.odom_stamp, np.float64)
    wall = np.asarray(run.odom_wall, np.float64)
    key = stamps if len(stamps) > 1 and np.ptp(stamps) > 0 else wall
    idx, out_of_order, dups = odometry_order(key)
    xy = np.asarray(run.xy, np.float64).reshape(-1, 2)[idx]
    t = stamps[idx] if has_clock else wall[idx]
    if out_of_order or dups:
        warnings.append(
            f"odometry: {out_of_order} out-of-order and {dups} duplicate samples (sorted, dropped)"
        )
    sim_time = _span(np.asarray(run.clock_sim, np.float64)) if has_clock else None
    real_time = max(_span(np.asarray(run.odom_wall, np.float64)), _span(np.asarray(run.cmd_wall, np.float64)))
    if has_clock and sim_time is not None and sim_time <= 0:
        sim_time = None
    duration = sim_time if has_clock else real_time
    distance = path_length(xy)
    completion = percentage_completed(xy, ref, radius)
    lap_time = float(t[completion.lap_pose_index] - t[0]) if completion.lap_completed else None
    dev = position_deviation(ref, xy, covered_checkpoints(xy, ref, completion))
    ref_length = path_length(np.vstack([ref, ref[:1]]))
    progress = progress_checkpoints(xy, ref, completion) / len(ref) * ref_length
    rtf = None
    if has_clock:
        wall = _span(np.asarray(run.clock_wall, np.float64))
        rtf = _span(np.asarray(run.clock_sim, np.float64)) / wall if wall > 0 else None
    n_cmd = len(run.cmd)
    return BehaviorReport(
        time_base="sim" if has_clock else "real",
        reference_checkpoints=len(ref),
        reference_length_m=ref_length,
        poses=len(xy),
        odometry_out_of_order=out_of_order,
        odometry_duplicates=dups,
        completed_distance_m=distance,
        experiment_sim_time_s=sim_time,
        experiment_real_time_s=real_time,
        average_speed_mps=distance / duration if duration else float("nan"),
        percentage_completed=completion.percentage,
        progress_m=progress,
        lap_completed=completion.lap_completed,
        lap_time_s=lap_time,
        direction=completion.direction,
        position_deviation_mean_m=dev.mean_m,
        position_deviation_max_m=dev.max_m,
        position_deviation_bm_score=dev.bm_score,
        position_deviation_bm_total=dev.bm_total,
        deviation_checkpoints=dev.checkpoints,
        brain_iterations=n_cmd,
        brain_iteration_frequency_real_hz=rate(n_cmd, _span(np.asarray(run.cmd_wall, np.float64))),
        brain_iteration_frequency_sim_hz=rate(n_cmd, sim_time) if sim_time else None,
        mean_inference_time_ms=trimmed_mean(run.inference_ms),
        real_time_factor=rtf,
        frame_rate_hz=rate(run.frames, run.frames_wall_span),
        suddenness=suddenness(run.cmd),
        warnings=warnings,
    )
