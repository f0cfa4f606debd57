"""Pure-pursuit expert: the ground-truth (v, w) for any pose near a circuit.

Steering: pure pursuit towards the centre-line point ``lookahead`` metres ahead of the nearest point
(``w = 2 v sin(alpha) / L``). Speed: the highest speed whose lateral acceleration stays under
``max_lateral_accel`` for the sharpest curvature within ``preview`` metres, clipped to
[``v_min``, ``v_max``] and reduced when the car is far off the centre line or badly misaligned,
so recovery labels from perturbed poses are slow and firm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .circuits import Circuit


@dataclass(frozen=True)
class ExpertConfig:
    v_min: float = 3.0
    v_max: float = 11.0
    w_max: float = 3.0
    max_lateral_accel: float = 5.0
    lookahead_base: float = 3.0
    lookahead_gain: float = 0.45
    preview: float = 25.0


class PurePursuitExpert:
    def __init__(self, circuit: Circuit, config: ExpertConfig | None = None, reverse: bool = False) -> None:
        self.circuit = circuit
        self.config = config or ExpertConfig()
        # Driving direction: the reversed centre line keeps "ahead" = increasing index.
        self._path = circuit.centerline[::-1].copy() if reverse else circuit.centerline
        k = np.abs(circuit.curvature())
        self._curv = k[::-1].copy() if reverse else k
        n_prev = max(int(self.config.preview / circuit.spacing), 1)
        # max |curvature| over the next ``preview`` metres, for every index (periodic)
        windows = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([self._curv, self._curv[:n_prev]]), n_prev
        )
        self._curv_ahead = windows.max(axis=1)[: len(self._curv)]

    def nearest_index(self, x: float, y: float) -> int:
        d2 = (self._path[:, 0] - x) ** 2 + (self._path[:, 1] - y) ** 2
        return int(d2.argmin())

    def command(self, x: float, y: float, yaw: float, v_now: float | None = None) -> tuple[float, float]:
        """(v, w) the expert would command at pose (x, y, yaw)."""
        c = self.config
        n = len(self._path)
        i = self.nearest_index(x, y)
        v_curve = math.sqrt(c.max_lateral_accel / max(float(self._curv_ahead[i]), 1e-4))
        v = min(max(v_curve, c.v_min), c.v_max)
        lateral = math.hypot(self._path[i, 0] - x, self._path[i, 1] - y)
        look = c.lookahead_base + c.lookahead_gain * (v if v_now is None else max(v_now, 0.0))
        j = (i + int(look / self.circuit.spacing)) % n
        dx, dy = self._path[j, 0] - x, self._path[j, 1] - y
        alpha = (math.atan2(dy, dx) - yaw + math.pi) % (2 * math.pi) - math.pi
        # slow down when off the line or pointing away from it (recovery)
        v *= max(0.4, 1.0 - 0.12 * lateral) * max(0.4, math.cos(alpha))
        v = max(v, c.v_min)
        w = 2.0 * v * math.sin(alpha) / max(math.hypot(dx, dy), 1e-3)
        return v, max(-c.w_max, min(c.w_max, w))
