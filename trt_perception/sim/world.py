"""A circuit, a vehicle and a camera stepped together: the in-process closed loop (no ROS).

``Simulation`` is what the ``circuit_sim`` node wraps; ``drive`` runs any brain (image -> (v, w)) for
a lap or until a time limit, for tests, benchmarks and dataset collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .circuits import Circuit
from .render import CameraModel, CircuitRenderer
from .vehicle import Unicycle, VehicleLimits, VehicleState


@dataclass
class Trajectory:
    """What a drive produced: simulated time, poses, commands and whether it ended on a full lap."""

    t: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray
    cmd: np.ndarray
    lap_completed: bool
    off_track: bool
    wall_s: float
    brain_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Simulation:
    """Vehicle on a circuit with a forward camera; ``progress`` counts centre-line metres driven."""

    def __init__(
        self,
        circuit: Circuit,
        camera: CameraModel | None = None,
        limits: VehicleLimits | None = None,
        renderer: CircuitRenderer | None = None,
    ) -> None:
        self.circuit = circuit
        self.renderer = renderer or CircuitRenderer(circuit, camera)
        self.vehicle = Unicycle(limits=limits)
        self.time = 0.0
        self.progress = 0.0
        self._idx = 0

    @property
    def state(self) -> VehicleState:
        return self.vehicle.state

    def reset(self, pose: tuple[float, float, float] | None = None, reverse: bool = False) -> None:
        x, y, yaw = pose or self.circuit.start_pose(reverse)
        self.vehicle.reset(x, y, yaw)
        self.time = 0.0
        self.progress = 0.0
        self._idx = int(self.circuit.nearest(np.array([x, y]))[0][0])

    def observe(self) -> np.ndarray:
        s = self.vehicle.state
        return self.renderer.render(s.x, s.y, s.yaw)

    def lateral_error(self) -> float:
        s = self.vehicle.state
        return float(self.circuit.nearest(np.array([s.x, s.y]))[1][0])

    def off_track(self) -> bool:
        """Both wheels off the asphalt: more than half the width plus 1 m from the centre line."""
        return self.lateral_error() > self.circuit.width / 2 + 1.0

    def step(self, v: float, w: float, dt: float, substeps: int = 1) -> VehicleState:
        for _ in range(substeps):
            self.vehicle.step(v, w, dt / substeps)
        self.time += dt
        s = self.vehicle.state
        idx = int(self.circuit.nearest(np.array([s.x, s.y]))[0][0])
        n = len(self.circuit.centerline)
        delta = (idx - self._idx + n // 2) % n - n // 2  # wrapped index change, either direction
        self.progress += delta * self.circuit.spacing
        self._idx = idx
        return s


def drive(
    sim: Simulation,
    brain: Callable[[np.ndarray], tuple[float, float]],
    max_time: float = 120.0,
    dt: float = 0.05,
    reverse: bool = False,
    stop_on_lap: bool = True,
    stop_off_track: bool = True,
) -> Trajectory:
    """Reset the car at the start and call ``brain(image)`` every ``dt`` simulated seconds."""
    sim.reset(reverse=reverse)
    ts, xys, yaws, cmds, brain_ms = [], [], [], [], []
    lap_len = sim.circuit.length
    lap = off = False
    wall0 = time.perf_counter()
    while sim.time < max_time:
        s = sim.state
        ts.append(sim.time)
        xys.append((s.x, s.y))
        yaws.append(s.yaw)
        img = sim.observe()
        t0 = time.perf_counter()
        v, w = brain(img)
        brain_ms.append((time.perf_counter() - t0) * 1e3)
        cmds.append((v, w))
        sim.step(v, w, dt)
        if abs(sim.progress) >= lap_len - 1.0:
            lap = True
            if stop_on_lap:
                break
        if stop_off_track and sim.off_track():
            off = True
            break
    s = sim.state
    ts.append(sim.time)
    xys.append((s.x, s.y))
    yaws.append(s.yaw)
    cmds.append(cmds[-1] if cmds else (0.0, 0.0))
    return Trajectory(
        np.asarray(ts),
        np.asarray(xys),
        np.asarray(yaws),
        np.asarray(cmds),
        lap,
        off,
        time.perf_counter() - wall0,
        np.asarray(brain_ms),
    )
