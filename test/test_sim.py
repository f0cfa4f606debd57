"""The circuit simulator: circuits, camera renderer, vehicle model and expert (ROS-free)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from trt_perception.sim.circuits import (
    circuit_names,
    get_circuit,
    load_reference,
    read_reference_csv,
    reference_csv_path,
)
from trt_perception.sim.expert import PurePursuitExpert
from trt_perception.sim.render import RED, CameraModel, CircuitRenderer
from trt_perception.sim.vehicle import Unicycle, VehicleLimits
from trt_perception.sim.world import Simulation, drive


@pytest.fixture(scope="module")
def simple_renderer() -> CircuitRenderer:
    return CircuitRenderer(get_circuit("simple"))


@pytest.mark.parametrize("name, length", [("simple", (240, 320)), ("montreal", (500, 620))])
def test_circuits_are_smooth_closed_loops(name: str, length: tuple[float, float]) -> None:
    c = get_circuit(name)
    assert length[0] < c.length < length[1]
    assert np.abs(c.curvature()).max() < 1 / 6.0  # no bend tighter than 6 m radius
    step = np.linalg.norm(np.diff(c.closed(), axis=0), axis=1)
    np.testing.assert_allclose(step, c.spacing, rtol=0.05)  # uniform, and closed (last -> first)
    # the road never touches itself: points far apart along the track stay two road widths apart
    p = c.centerline[::4]
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    i = np.arange(len(p))
    along = np.minimum(np.abs(i[:, None] - i[None]), len(p) - np.abs(i[:, None] - i[None])) * 4 * c.spacing
    assert d[along > 40].min() > 2 * c.width


@pytest.mark.parametrize("name", circuit_names())
def test_reference_csv_matches_the_circuit(name: str) -> None:
    ref = read_reference_csv(reference_csv_path(name))
    np.testing.assert_allclose(ref, get_circuit(name).reference(), atol=1e-3)
    np.testing.assert_allclose(load_reference(name), ref)
    spacing = np.linalg.norm(np.diff(ref, axis=0), axis=1)
    assert spacing.mean() == pytest.approx(0.5, rel=0.02)


def test_reference_errors_name_the_problem(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        load_reference(str(tmp_path / "nowhere.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\nfoo,bar\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        read_reference_csv(bad)
    with pytest.raises(ValueError, match="unknown circuit"):
        get_circuit("monza")


def test_camera_sees_the_red_centre_line_ahead(simple_renderer: CircuitRenderer) -> None:
    c = simple_renderer.circuit
    x, y, yaw = c.start_pose()
    img = simple_renderer.render(x, y, yaw)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    row = img[460]
    red = np.flatnonzero(np.abs(row.astype(int) - RED).sum(axis=1) < 60)
    assert len(red) > 0 and abs(red.mean() - 319.5) < 15  # centred under the car
    # sky above, road below
    assert img[10].mean() > 150 and img[479, 100:540].std() < 60
    # 1.5 m to the left of the line, the line appears on the right
    h = c.heading()[0]
    img2 = simple_renderer.render(x - 1.5 * math.sin(h), y + 1.5 * math.cos(h), yaw)
    red2 = np.flatnonzero(np.abs(img2[300].astype(int) - RED).sum(axis=1) < 60)
    assert red2.mean() > 400


def test_render_is_deterministic_and_fast(simple_renderer: CircuitRenderer) -> None:
    pose = (*get_circuit("simple").centerline[200], 0.3)
    a = simple_renderer.render(*pose).copy()
    b = CircuitRenderer(get_circuit("simple")).render(*pose)
    np.testing.assert_array_equal(a, b)
    t0 = time.perf_counter()
    for _ in range(20):
        simple_renderer.render(*pose)
    assert (time.perf_counter() - t0) / 20 < 0.02  # ~1-2 ms here; generous for a loaded CI machine


def test_camera_model_size() -> None:
    r = CircuitRenderer(get_circuit("simple"), CameraModel(width=320, height=240, hfov_deg=60))
    assert r.render(0.0, 0.0, 0.0).shape == (240, 320, 3)


def test_unicycle_follows_exact_arcs() -> None:
    car = Unicycle(limits=VehicleLimits(max_accel=1e9, max_ang_accel=1e9))
    for _ in range(100):  # v = 2 m/s, w = 0.5 rad/s for 4*pi s: a full circle of radius 4 m
        car.step(2.0, 0.5, 4 * math.pi / 100)
    s = car.state
    assert (s.x, s.y) == pytest.approx((0.0, 0.0), abs=1e-9)
    car.reset(0, 0, 0)
    car.step(2.0, 0.5, 2 * math.pi)  # half circle (pi rad at 0.5 rad/s) in one step
    assert (car.state.x, car.state.y) == pytest.approx((0.0, 8.0), abs=1e-9)


def test_unicycle_limits() -> None:
    car = Unicycle(limits=VehicleLimits(max_speed=5.0, max_accel=2.0))
    car.step(100.0, 0.0, 1.0)
    assert car.state.v == pytest.approx(2.0)  # acceleration-limited
    for _ in range(10):
        car.step(100.0, 0.0, 1.0)
    assert car.state.v == pytest.approx(5.0)  # speed-limited


@pytest.mark.parametrize("name", circuit_names())
@pytest.mark.parametrize("reverse", [False, True])
def test_expert_drives_a_clean_lap(name: str, reverse: bool) -> None:
    c = get_circuit(name)
    sim = Simulation(c, renderer=CircuitRenderer(c, CameraModel(width=64, height=48)))
    expert = PurePursuitExpert(c, reverse=reverse)
    tr = drive(
        sim,
        lambda _img: expert.command(sim.state.x, sim.state.y, sim.state.yaw),
        max_time=150,
        reverse=reverse,
    )
    assert tr.lap_completed and not tr.off_track
    _, lateral = c.nearest(tr.xy)
    assert lateral.max() < 0.8
    assert 6.0 < c.length / tr.t[-1] < 11.0  # average speed, m/s


def test_expert_recovers_towards_the_line() -> None:
    c = get_circuit("simple")
    expert = PurePursuitExpert(c)
    x, y, yaw = c.start_pose()
    h = c.heading()[0]
    # 2 m left of the line, facing along it: steer right (negative w), and slower than on the line
    v_off, w_off = expert.command(x - 2 * math.sin(h), y + 2 * math.cos(h), yaw)
    v_on, _ = expert.command(x, y, yaw)
    assert w_off < -0.1 and v_off < v_on
