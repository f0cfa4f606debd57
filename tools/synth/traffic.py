"""Traffic sequences with identities: vehicles entering, leaving, passing each other, partly occluded.

The camera looks ahead along a three-lane road (a patrol robot's or a car's dash view). Vehicles
slower than the camera come into view in the distance and approach until they leave past the side
(those in the middle lane change into the right one first, passing or being passed there); faster
ones enter from the left close by and recede into the distance, passing the others. Each vehicle keeps its plate and its ``track_id`` (from 1) for its whole life,
so every frame's car and plate annotations carry the identity (COCO ``track_id``; ``mot_lines``
writes the MOT challenge ``gt.txt`` form). Vehicles come and go at 15 m, where their plates are
barely readable; a vehicle more than 30% hidden behind a nearer one is left out of that frame (the
renderer's rule), so identities also come back after short occlusions.

Deterministic: the same seed gives the same vehicles and the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from tools.synth.scene import CAR, Car, Frame, Scene, clear_road, random_car, render

# Where vehicles appear / vanish (m): at 15 m a car is ~120 px wide at 720p (the sample detector's
# range) and its plate ~14 px tall; beside the camera at 4-5 m the plate is out of the frame.
Z_FAR, Z_NEAR_SIDE = 15.0, 5.0


@dataclass
class Vehicle:
    car: Car  # appearance and plate; ``car.track_id`` is the identity
    t0: float  # time it starts at z0 (s)
    z0: float
    speed: float  # m/s relative to the camera; < 0 approaches
    lane0: float
    lane1: float  # lane after its lane change
    change_t: float  # when the lane change starts (s); it takes 2 s

    def at(self, t: float) -> Car | None:
        """Its car at time ``t``, or None before it appears / after it left."""
        z = self.z0 + self.speed * (t - self.t0)
        if t < self.t0 or not Z_NEAR_SIDE * 0.8 <= z <= Z_FAR:
            return None
        u = float(np.clip((t - self.change_t) / 2.0, 0.0, 1.0))
        u = u * u * (3 - 2 * u)  # smooth lane change
        return replace(self.car, z=z, lane=self.lane0 + (self.lane1 - self.lane0) * u)

    @property
    def t_end(self) -> float:
        z_end = Z_NEAR_SIDE * 0.8 if self.speed < 0 else Z_FAR
        return self.t0 + (z_end - self.z0) / self.speed


def traffic(
    rng: np.random.Generator, seconds: float, per_minute: float = 24.0
) -> tuple[Scene, list[Vehicle]]:
    """A road scene and the vehicles of a ``seconds`` long sequence (``per_minute`` new ones a
    minute on average, 10 s of traffic already under way at t = 0)."""
    scene = clear_road(rng)
    vehicles: list[Vehicle] = []
    t, gap = -10.0, 60.0 / per_minute
    free_at = {-1: -99.0, 0: -99.0, 1: -99.0}  # a lane takes no new vehicle until the last one moved on
    while t < seconds:
        t += gap * float(rng.uniform(0.5, 1.5))
        lanes = [lane for lane, free in free_at.items() if free <= t]
        if not lanes:
            continue
        lane = int(rng.choice(lanes))
        # Lanes 0 and +1 carry slower traffic coming closer, lane -1 faster traffic overtaking: no vehicle
        # ever appears where another one just vanished, so an identity never jumps between two.
        if lane >= 0:
            speed = -float(rng.uniform(2.5, 4.0) if lane == 0 else rng.uniform(1.5, 2.5))
            z0, lane1 = Z_FAR, 1.0  # middle-lane ones move aside before they come close
            change_t = t + (Z_FAR - 9.0) / -speed
        else:
            speed = float(rng.uniform(1.5, 3.5))
            z0, lane1, change_t = Z_NEAR_SIDE * 0.8, float(lane), seconds
        car = replace(random_car(rng, float(lane), z0), track_id=len(vehicles) + 1)
        vehicles.append(Vehicle(car, t, z0, speed, float(lane), lane1, change_t))
        free_at[lane] = t + 8.0 / abs(speed)  # ~8 m apart in one lane
    return scene, vehicles


def scene_at(scene: Scene, vehicles: list[Vehicle], t: float, ego_speed: float = 12.0) -> Scene:
    cars = [c for c in (v.at(t) for v in vehicles) if c is not None]
    return replace(scene, cars=cars, travelled=scene.travelled + ego_speed * t)


def traffic_frames(
    seed: int, seconds: float, fps: float, width: int, height: int, per_minute: float = 24.0
) -> Iterator[tuple[float, Frame]]:
    """``(t, frame)`` of a traffic sequence; annotations carry the vehicles' ``track_id``."""
    rng = np.random.default_rng(seed)
    scene, vehicles = traffic(rng, seconds, per_minute)
    for i in range(round(seconds * fps)):
        t = i / fps
        yield t, render(scene_at(scene, vehicles, t), width, height, seed * 100_000 + i)


def mot_lines(frames: list[Frame]) -> list[str]:
    """MOT challenge ground truth (``gt.txt``) of the cars: frame (from 1), id, left, top, width,
    height, 1 (evaluated), class 1 (car), visibility 1."""
    lines = []
    for i, frame in enumerate(frames, start=1):
        for a in frame.annotations:
            if a.category_id == CAR and a.track_id:
                x, y, w, h = a.bbox
                lines.append(f"{i},{a.track_id},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,1,1")
    return lines
