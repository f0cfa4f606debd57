"""Forward camera view of a circuit from a robot pose, as the F1 car's camera in BehaviorMetrics.

The circuit is painted once into a top-down texture (grass, asphalt, white edge lines, the red centre
line of the follow-line task). Every pixel below the horizon sees a fixed ground point in the robot
frame (pinhole camera at ``height`` metres, pitched down by ``pitch``), precomputed at start-up; a
frame is then one affine transform of those points by the pose and one ``cv2.remap`` of the texture
(about 1-2 ms for 640x480 on one core). Points farther than ``max_range`` fade into the haze colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .circuits import Circuit

# BGR colours
GRASS = (60, 125, 70)
ASPHALT = (92, 92, 96)
WHITE = (235, 235, 235)
RED = (30, 30, 210)
SKY_TOP = (235, 190, 150)
HAZE = (205, 200, 190)


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera on the car: image size, horizontal field of view, mounting height and pitch."""

    width: int = 640
    height: int = 480
    hfov_deg: float = 80.0
    mount_height: float = 0.9
    pitch_deg: float = 4.0
    forward_offset: float = 0.5
    max_range: float = 60.0

    @property
    def focal(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)


class CircuitRenderer:
    """``render(x, y, yaw) -> BGR uint8 [H, W, 3]`` for one circuit and camera."""

    def __init__(
        self, circuit: Circuit, camera: CameraModel | None = None, resolution: float = 0.06, seed: int = 0
    ) -> None:
        self.circuit = circuit
        self.camera = camera or CameraModel()
        self.resolution = resolution
        margin = self.camera.max_range + 5.0
        lo = circuit.centerline.min(0) - margin
        hi = circuit.centerline.max(0) + margin
        self._origin = (float(lo[0]), float(hi[1]))  # world (x, y) of texture pixel (0, 0)
        w_px, h_px = np.ceil((hi - lo) / resolution).astype(int)
        self.texture = self._paint(int(w_px), int(h_px), seed)
        self._setup_rays()
        self._out = np.empty((self.camera.height, self.camera.width, 3), np.uint8)
        self._sky = self._sky_gradient()

    # -- texture
    def _to_px(self, xy: np.ndarray) -> np.ndarray:
        ox, oy = self._origin
        return np.stack([(xy[:, 0] - ox) / self.resolution, (oy - xy[:, 1]) / self.resolution], axis=1)

    def _paint(self, w_px: int, h_px: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        tex = np.empty((h_px, w_px, 3), np.uint8)
        tex[:] = GRASS
        # low-frequency grass mottling so the ground has texture (motion cues), not a flat colour
        noise = cv2.resize(
            rng.normal(0, 1, (h_px // 40 + 2, w_px // 40 + 2)).astype(np.float32), (w_px, h_px)
        )
        tex = np.clip(tex.astype(np.int16) + (noise[..., None] * 10).astype(np.int16), 0, 255).astype(
            np.uint8
        )
        c = self.circuit
        shift = 4  # sub-pixel precision for cv2 drawing
        pts = np.round(self._to_px(c.closed()) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)

        def band(color: tuple[int, int, int], width_m: float) -> None:
            cv2.polylines(
                tex, [pts], True, color, max(round(width_m / self.resolution), 1), cv2.LINE_AA, shift
            )

        band(ASPHALT, c.width)
        # edge lines: offset polylines on both sides
        normal = np.stack([-np.sin(c.heading()), np.cos(c.heading())], axis=1)
        for side in (-1.0, 1.0):
            edge = c.centerline + side * normal * (c.width / 2 - 0.35)
            e = (
                np.round(self._to_px(np.vstack([edge, edge[:1]])) * (1 << shift))
                .astype(np.int32)
                .reshape(-1, 1, 2)
            )
            cv2.polylines(tex, [e], True, WHITE, max(round(0.2 / self.resolution), 1), cv2.LINE_AA, shift)
        band(RED, 0.3)
        return tex

    # -- camera geometry
    def _setup_rays(self) -> None:
        cam = self.camera
        f = cam.focal
        u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
        # ray in the robot frame (x forward, y left, z up), camera pitched down by ``pitch``
        rx, ry, rz = np.ones_like(u), -(u - (cam.width - 1) / 2) / f, -(v - (cam.height - 1) / 2) / f
        p = math.radians(cam.pitch_deg)
        dx = rx * math.cos(p) + rz * math.sin(p)
        dz = -rx * math.sin(p) + rz * math.cos(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(dz < -1e-6, cam.mount_height / -dz, np.inf)
        gx, gy = t * dx + cam.forward_offset, t * ry
        dist = np.hypot(gx, gy)
        ground = np.isfinite(dist) & (dist < cam.max_range)
        rows = np.nonzero(ground.any(axis=1))[0]
        self._first_row = int(rows[0]) if len(rows) else cam.height
        sl = slice(self._first_row, cam.height)
        # beyond max_range: far outside the texture so remap returns the haze border colour
        far = 1e7
        self._gx = np.where(ground, gx, far)[sl].astype(np.float32)
        self._gy = np.where(ground, gy, far)[sl].astype(np.float32)
        self._mapx = np.empty_like(self._gx)
        self._mapy = np.empty_like(self._gx)
        self._tmp = np.empty_like(self._gx)

    def _sky_gradient(self) -> np.ndarray:
        h = max(self._first_row, 1)
        a = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        col = (1 - a) * np.array(SKY_TOP, np.float32) + a * np.array(HAZE, np.float32)
        return np.broadcast_to(col, (h, self.camera.width, 3)).astype(np.uint8)

    def render(self, x: float, y: float, yaw: float) -> np.ndarray:
        """The camera image at pose (x, y, yaw); the returned buffer is reused by the next call."""
        c, s = math.cos(yaw), math.sin(yaw)
        ox, oy = self._origin
        r = 1.0 / self.resolution
        # texture column = (x + c*gx - s*gy - ox) / res ; row = (oy - (y + s*gx + c*gy)) / res
        np.multiply(self._gx, c * r, out=self._mapx)
        np.multiply(self._gy, -s * r, out=self._tmp)
        self._mapx += self._tmp
        self._mapx += (x - ox) * r
        np.multiply(self._gx, -s * r, out=self._mapy)
        np.multiply(self._gy, -c * r, out=self._tmp)
        self._mapy += self._tmp
        self._mapy += (oy - y) * r
        out = self._out
        if self._first_row > 0:
            out[: self._first_row] = self._sky[: self._first_row]
        cv2.remap(
            self.texture,
            self._mapx,
            self._mapy,
            cv2.INTER_LINEAR,
            dst=out[self._first_row :],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=HAZE,
        )
        return out
