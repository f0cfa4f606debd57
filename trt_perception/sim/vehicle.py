"""Kinematic vehicle driven by (v, w), like a Gazebo F1 car under ``cmd_vel``.

A unicycle with acceleration limits: the commanded linear speed is reached at ``max_accel`` m/s^2
and the angular speed at ``max_ang_accel`` rad/s^2; the pose is integrated exactly along the arc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class VehicleState:
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    v: float = 0.0
    w: float = 0.0


@dataclass(frozen=True)
class VehicleLimits:
    max_speed: float = 15.0
    max_yaw_rate: float = 4.0
    max_accel: float = 8.0
    max_ang_accel: float = 30.0


class Unicycle:
    """``step(v_cmd, w_cmd, dt)`` moves the state; commands are clipped to the limits."""

    def __init__(self, state: VehicleState | None = None, limits: VehicleLimits | None = None) -> None:
        self.state = state or VehicleState()
        self.limits = limits or VehicleLimits()

    def reset(self, x: float, y: float, yaw: float) -> None:
        self.state = VehicleState(x, y, yaw)

    def step(self, v_cmd: float, w_cmd: float, dt: float) -> VehicleState:
        s, lim = self.state, self.limits
        v_cmd = _clip(v_cmd, -lim.max_speed, lim.max_speed)
        w_cmd = _clip(w_cmd, -lim.max_yaw_rate, lim.max_yaw_rate)
        s.v += _clip(v_cmd - s.v, -lim.max_accel * dt, lim.max_accel * dt)
        s.w += _clip(w_cmd - s.w, -lim.max_ang_accel * dt, lim.max_ang_accel * dt)
        if abs(s.w) < 1e-6:
            s.x += s.v * dt * math.cos(s.yaw)
            s.y += s.v * dt * math.sin(s.yaw)
        else:  # exact arc: no drift from Euler steps at large dt
            r = s.v / s.w
            new_yaw = s.yaw + s.w * dt
            s.x += r * (math.sin(new_yaw) - math.sin(s.yaw))
            s.y -= r * (math.cos(new_yaw) - math.cos(s.yaw))
            s.yaw = new_yaw
        s.yaw = (s.yaw + math.pi) % (2 * math.pi) - math.pi
        return s


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
