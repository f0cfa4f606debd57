"""Seeded synthetic road scenes: a perspective road with lane markings, cars carrying licence plates.

Everything is drawn with OpenCV from a small pinhole camera model, so a scene renders at any resolution
with consistent geometry and exact ground truth: car and plate boxes (plate text attached) and a
per-pixel class mask (background, road, lane_marking, vehicle). Same seed -> same bytes.

A ``Scene`` is a plain description (road, cars, lighting); ``random_scene`` samples one, ``render``
draws it, ``animate`` moves it in time for videos and bags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from tools.synth.plates import random_plate_text, render_plate

SEGMENTATION_CLASSES = ["background", "road", "lane_marking", "vehicle"]
BACKGROUND, ROAD, LANE_MARKING, VEHICLE = range(4)
CATEGORIES = [{"id": 1, "name": "car"}, {"id": 2, "name": "plate"}]
CAR, PLATE = 1, 2

# World units are metres. The camera looks along +Z, X to the right, the road is the plane Y = cam_height.
LANE_WIDTH = 3.5
MARK_WIDTH = 0.25
CAR_WIDTH = 1.8
PLATE_HEIGHT_M = 0.2  # oversized plates keep the text readable at useful distances
PLATE_BASE_PX = 48  # plates are rendered once at this height, then scaled into place
Z_NEAR = 2.5
Z_FAR = 400.0


@dataclass
class Car:
    lane: float  # lateral position in lanes from the ego lane centre (0 = ahead)
    z: float  # distance in metres
    color: tuple[int, int, int]
    height: float  # body height in metres
    cabin: float  # cabin width fraction of the body width
    roof: float  # cabin height fraction of the body height
    plate_text: str
    plate: np.ndarray  # BGR, rendered once so it looks the same in every frame
    track_id: int = 0  # identity in a sequence (0: none), carried by its annotations


@dataclass
class Scene:
    curvature: float  # lateral offset = curvature * z^2 (metres)
    lanes: int  # lanes to each side of the ego lane
    horizon: float  # horizon row as a fraction of the image height
    focal: float  # focal length as a fraction of the image width
    cam_height: float
    sky: tuple[tuple[int, int, int], tuple[int, int, int]]
    ground: tuple[int, int, int]
    road: tuple[int, int, int]
    mark: tuple[int, int, int]
    buildings: list[tuple[float, float, float, tuple[int, int, int]]]  # (x0, x1, height) fractions + colour
    cars: list[Car]
    brightness: float = 1.0
    contrast: float = 1.0
    noise: float = 3.0
    blur: float = 0.0
    travelled: float = 0.0  # ego distance, moves the dashes
    dash: tuple[float, float] = (3.0, 6.0)  # dash length, period (m)


@dataclass
class Annotation:
    category_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    text: str = ""
    track_id: int = 0  # the car's identity in a sequence; a plate carries its car's


@dataclass
class Frame:
    image: np.ndarray  # H, W, 3 uint8 BGR
    mask: np.ndarray  # H, W uint8 class indices
    annotations: list[Annotation]


def _color(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))  # type: ignore[return-value]


CAR_COLOURS = [
    (40, 40, 200),
    (200, 60, 30),
    (230, 230, 230),
    (30, 30, 30),
    (60, 160, 60),
    (0, 200, 230),
    (140, 140, 140),
    (120, 40, 120),
    (30, 110, 220),
    (180, 140, 60),
]


def random_car(rng: np.random.Generator, lane: float, z: float, plate_format: str = "LLDDDLL") -> Car:
    base = np.array(CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))], np.float32)
    color = np.clip(base + rng.normal(0, 18, 3), 0, 255)
    text = random_plate_text(rng, plate_format)
    return Car(
        lane=lane,
        z=z,
        color=tuple(int(c) for c in color),  # type: ignore[arg-type]
        height=float(rng.uniform(1.3, 1.9)),
        cabin=float(rng.uniform(0.65, 0.9)),
        roof=float(rng.uniform(0.35, 0.5)),
        plate_text=text,
        plate=render_plate(text, rng, height_px=PLATE_BASE_PX),
    )


def random_scene(rng: np.random.Generator, max_cars: int = 5, plate_format: str = "LLDDDLL") -> Scene:
    """One random scene; cars stay close enough that their plates are at least ~20 px tall at 720p."""
    lanes = int(rng.integers(1, 3))
    sky_top = _color(rng, 120, 255)
    sky_bottom = tuple(int(min(255, c + rng.integers(10, 60))) for c in sky_top)
    buildings = []
    for _ in range(int(rng.integers(0, 7))):
        x0 = float(rng.uniform(-0.1, 1.0))
        buildings.append(
            (x0, x0 + float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.05, 0.3)), _color(rng, 40, 200))
        )
    grey = int(rng.integers(50, 120))
    scene = Scene(
        curvature=float(rng.uniform(-0.002, 0.002)),
        lanes=lanes,
        horizon=float(rng.uniform(0.38, 0.5)),
        focal=float(rng.uniform(0.75, 1.1)),
        cam_height=float(rng.uniform(1.3, 1.7)),
        sky=(sky_top, sky_bottom),  # type: ignore[arg-type]
        ground=_color(rng, 30, 160),
        road=(grey + int(rng.integers(-8, 8)), grey, grey + int(rng.integers(-8, 8))),
        mark=(int(rng.integers(200, 256)),) * 2 + (int(rng.integers(200, 256)),),  # type: ignore[arg-type]
        buildings=buildings,
        cars=[],
        brightness=float(rng.uniform(0.6, 1.3)),
        contrast=float(rng.uniform(0.75, 1.2)),
        noise=float(rng.uniform(0, 8)),
        blur=float(rng.choice([0.0, 0.0, rng.uniform(0.4, 1.6)])),
        travelled=float(rng.uniform(0, 100)),
    )
    # Plate height on screen = focal * W * PLATE_HEIGHT_M / z >= 20 px at 1280 wide.
    z_max = scene.focal * 1280 * PLATE_HEIGHT_M / 20.0
    n = int(rng.integers(1, max_cars + 1)) if max_cars > 0 else 0
    rows = ((5.0, 7.0), (7.0, 9.5), (9.5, max(z_max, 9.6)))
    slots = [(lane, row) for lane in range(-lanes, lanes + 1) for row in rows]
    rng.shuffle(slots)  # type: ignore[arg-type]
    for lane, (z0, z1) in slots[:n]:
        scene.cars.append(
            random_car(rng, lane + float(rng.uniform(-0.15, 0.15)), float(rng.uniform(z0, z1)), plate_format)
        )
    return scene


class _Camera:
    def __init__(self, scene: Scene, width: int, height: int) -> None:
        self.f = scene.focal * width
        self.cx = width / 2.0
        self.cy = scene.horizon * height
        self.h = scene.cam_height
        self.k = scene.curvature

    def project(self, x: np.ndarray, z: np.ndarray, y: np.ndarray | float = 0.0) -> np.ndarray:
        """Road-relative (x lateral, z depth, y height above road) -> pixel coordinates [N, 2]."""
        xw = x + self.k * z * z
        u = self.cx + self.f * xw / z
        v = self.cy + self.f * (self.h - y) / z
        return np.stack([u, v], axis=-1)


def _strip(cam: _Camera, x0: float, x1: float, z0: float, z1: float, n: int = 24) -> np.ndarray:
    """A road-plane band between lateral offsets x0..x1 and depths z0..z1 as an int32 polygon."""
    z = np.geomspace(z0, z1, n)
    left = cam.project(np.full(n, x0), z)
    right = cam.project(np.full(n, x1), z)[::-1]
    return np.round(np.concatenate([left, right]) * 16).astype(np.int32)  # 4 fractional bits


def _fill(img: np.ndarray, mask: np.ndarray, poly: np.ndarray, color: tuple[int, ...], cls: int) -> None:
    cv2.fillPoly(img, [poly], color, cv2.LINE_AA, shift=4)
    cv2.fillPoly(mask, [poly], cls, cv2.LINE_8, shift=4)


def _draw_road(img: np.ndarray, mask: np.ndarray, scene: Scene, cam: _Camera) -> None:
    half = (scene.lanes + 0.5) * LANE_WIDTH
    _fill(img, mask, _strip(cam, -half - 0.6, half + 0.6, Z_NEAR, Z_FAR), scene.road, ROAD)
    dash_len, period = scene.dash
    for i in range(-scene.lanes, scene.lanes + 2):
        x = (i - 0.5) * LANE_WIDTH
        xs = (x - MARK_WIDTH / 2, x + MARK_WIDTH / 2)
        if abs(x) >= half - 1e-6:  # solid edge lines
            _fill(img, mask, _strip(cam, *xs, Z_NEAR, Z_FAR), scene.mark, LANE_MARKING)
            continue
        start = Z_NEAR - (scene.travelled % period)
        for z0 in np.arange(start, 80.0, period):
            z_a, z_b = max(z0, Z_NEAR), z0 + dash_len
            if z_b > z_a:
                _fill(img, mask, _strip(cam, *xs, z_a, z_b, n=4), scene.mark, LANE_MARKING)


def _draw_background(img: np.ndarray, scene: Scene, cam: _Camera) -> None:
    h, w = img.shape[:2]
    hy = round(cam.cy)
    top, bottom = (np.array(c, np.float32) for c in scene.sky)
    t = np.linspace(0, 1, max(hy, 1), dtype=np.float32)[:, None]
    img[:hy] = (top * (1 - t) + bottom * t)[:, None, :].astype(np.uint8)
    img[hy:] = scene.ground
    for x0, x1, bh, color in scene.buildings:
        cv2.rectangle(img, (int(x0 * w), int(hy - bh * h)), (int(x1 * w), hy), color, -1)


def _place(img: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste ``patch`` with its top-left at (x, y), clipped to the image."""
    h, w = img.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def _draw_car(img: np.ndarray, mask: np.ndarray, car: Car, cam: _Camera) -> list[Annotation]:
    """A rear view: shadow, wheels, body, cabin with rear window, tail lights, plate."""
    x = car.lane * LANE_WIDTH
    ((u, v_ground),) = cam.project(np.array([x]), np.array([car.z]))
    s = cam.f / car.z  # pixels per metre at this depth
    bw, bh = CAR_WIDTH * s, car.height * s
    left, right = u - bw / 2, u + bw / 2
    body_top = v_ground - 0.15 * s - bh * (1 - car.roof)
    roof_top = v_ground - 0.15 * s - bh
    h, w = img.shape[:2]
    dark = tuple(int(c * 0.35) for c in car.color)

    def pts(*xy: float) -> np.ndarray:
        return np.round(np.array(xy, np.float64).reshape(-1, 2) * 16).astype(np.int32)

    cv2.ellipse(
        img,
        (int(u * 16), int(v_ground * 16)),
        (int(bw * 0.6 * 16), int(0.12 * s * 16)),
        0,
        0,
        360,
        tuple(int(c * 0.5) for c in img[min(int(v_ground), h - 1), min(max(int(u), 0), w - 1)]),
        -1,
        cv2.LINE_AA,
        4,
    )
    wheel = 0.32 * s
    for wx in (left + 0.02 * bw, right - 0.02 * bw - wheel):
        _fill(
            img,
            mask,
            pts(wx, v_ground - 0.35 * s, wx + wheel, v_ground - 0.35 * s, wx + wheel, v_ground, wx, v_ground),
            (25, 25, 25),
            VEHICLE,
        )
    body = pts(
        left,
        v_ground - 0.15 * s,
        right,
        v_ground - 0.15 * s,
        right,
        body_top + 0.1 * s,
        right - 0.05 * bw,
        body_top,
        left + 0.05 * bw,
        body_top,
        left,
        body_top + 0.1 * s,
    )
    _fill(img, mask, body, car.color, VEHICLE)
    cab_half = car.cabin * bw / 2
    cabin = pts(
        u - cab_half,
        body_top,
        u + cab_half,
        body_top,
        u + cab_half * 0.8,
        roof_top,
        u - cab_half * 0.8,
        roof_top,
    )
    _fill(img, mask, cabin, car.color, VEHICLE)
    win = pts(
        u - cab_half * 0.85,
        body_top - 0.05 * s,
        u + cab_half * 0.85,
        body_top - 0.05 * s,
        u + cab_half * 0.7,
        roof_top + 0.08 * s,
        u - cab_half * 0.7,
        roof_top + 0.08 * s,
    )
    cv2.fillPoly(img, [win], dark, cv2.LINE_AA, shift=4)
    lamp_w, lamp_h = 0.25 * s, 0.12 * s
    for lx in (left + 0.06 * bw, right - 0.06 * bw - lamp_w):
        ly = body_top + 0.15 * s
        cv2.fillPoly(
            img,
            [pts(lx, ly, lx + lamp_w, ly, lx + lamp_w, ly + lamp_h, lx, ly + lamp_h)],
            (30, 30, 210),
            cv2.LINE_AA,
            shift=4,
        )
    px, py, pw, ph = _plate_rect(car, cam)
    interp = cv2.INTER_AREA if ph < car.plate.shape[0] else cv2.INTER_LINEAR
    _place(img, cv2.resize(car.plate, (pw, ph), interpolation=interp), px, py)
    x0, y0 = max(left, 0.0), max(roof_top, 0.0)
    x1, y1 = min(right, float(w)), min(v_ground, float(h))
    return [
        Annotation(CAR, (x0, y0, x1 - x0, y1 - y0), track_id=car.track_id),
        Annotation(PLATE, (float(px), float(py), float(pw), float(ph)), car.plate_text, car.track_id),
    ]


def _plate_rect(car: Car, cam: _Camera) -> tuple[int, int, int, int]:
    """Plate scaled to PLATE_HEIGHT_M at the car's depth, centred low on the body: x, y, w, h."""
    ((u, v_ground),) = cam.project(np.array([car.lane * LANE_WIDTH]), np.array([car.z]))
    s = cam.f / car.z
    ph = max(round(PLATE_HEIGHT_M * s), 4)
    pw = max(round(car.plate.shape[1] * ph / car.plate.shape[0]), 8)
    return round(u - pw / 2), round(v_ground - 0.2 * s - ph), pw, ph


def _occluded(box: tuple[float, ...], nearer: list[tuple[float, ...]], limit: float) -> bool:
    x, y, w, h = box
    for nx, ny, nw, nh in nearer:
        iw = min(x + w, nx + nw) - max(x, nx)
        ih = min(y + h, ny + nh) - max(y, ny)
        if iw > 0 and ih > 0 and iw * ih > limit * w * h:
            return True
    return False


def render(scene: Scene, width: int, height: int, noise_seed: int = 0) -> Frame:
    """Draw ``scene`` at ``width`` x ``height``; noise comes from ``noise_seed`` (deterministic)."""
    img = np.empty((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    cam = _Camera(scene, width, height)
    _draw_background(img, scene, cam)
    _draw_road(img, mask, scene, cam)
    # Far to near; a car hidden behind nearer ones is left out (of the picture and the ground truth).
    cars = sorted(scene.cars, key=lambda c: -c.z)
    boxes = [_car_box(c, cam) for c in cars]
    anns: list[Annotation] = []
    for i, car in enumerate(cars):
        # Cars whose plate leaves the frame are out of shot: no half plates without a readable text.
        px, py, pw, ph = _plate_rect(car, cam)
        if px < 0 or py < 0 or px + pw > width or py + ph > height:
            continue
        if _occluded(boxes[i], [b for b in boxes[i + 1 :]], 0.3):
            continue
        drawn = _draw_car(img, mask, car, cam)
        hidden = [d.bbox for d in drawn]
        anns = [a for a in anns if not (a.category_id == PLATE and _occluded(a.bbox, hidden, 0.0))]
        anns += drawn
    img = _photometric(img, scene, noise_seed)
    return Frame(img, mask, anns)


def _car_box(car: Car, cam: _Camera) -> tuple[float, float, float, float]:
    ((u, v),) = cam.project(np.array([car.lane * LANE_WIDTH]), np.array([car.z]))
    s = cam.f / car.z
    bw, bh = CAR_WIDTH * s, (car.height + 0.15) * s
    return (u - bw / 2, v - bh, bw, bh)


def _photometric(img: np.ndarray, scene: Scene, noise_seed: int) -> np.ndarray:
    if scene.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur)
    gain = scene.brightness * scene.contrast
    bias = 128.0 * scene.brightness * (1.0 - scene.contrast)
    out = img.astype(np.float32) * gain + bias
    if scene.noise > 0:
        out += np.random.default_rng(noise_seed).normal(0, scene.noise, img.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def clear_road(rng: np.random.Generator, plate_format: str = "LLDDDLL") -> Scene:
    """An empty, nearly straight, sharp scene with the video sequences' camera (cars are added after)."""
    scene = random_scene(rng, max_cars=0, plate_format=plate_format)
    return replace(
        scene,
        lanes=1,
        focal=0.8,
        curvature=scene.curvature / 4,
        blur=0.0,
        noise=2.0,
        brightness=1.0,
        contrast=1.0,
    )


def video_scene(rng: np.random.Generator, plate_format: str = "LLDDDLL") -> Scene:
    """A three-lane scene with a car per lane whose motion keeps every plate in view and >= 20 px tall."""
    scene = clear_road(rng, plate_format)
    scene.cars = [random_car(rng, lane, z, plate_format) for lane, z in ((-1, 8.0), (0, 6.5), (1, 8.0))]
    return scene


def animate(scene: Scene, t: float, ego_speed: float = 12.0) -> Scene:
    """``scene`` at time ``t`` seconds: ego moves forward, cars drift smoothly around their distance."""
    cars = []
    for i, car in enumerate(scene.cars):
        amp = 1.5 if car.lane == 0 else 0.8
        cars.append(replace(car, z=car.z + amp * np.sin((0.6 + 0.2 * i) * t + 1.3 * i)))
    return replace(
        scene,
        cars=cars,
        travelled=scene.travelled + ego_speed * t,
        brightness=scene.brightness * (1.0 + 0.12 * np.sin(0.4 * t)),
    )
