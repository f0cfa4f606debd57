"""PilotNet stage and node: crop rows, RGB/255 input, un-normalised (v, w), the sample model, the ROS node."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from trt_perception.inference.engine import EngineError
from trt_perception.stages.pilot import Pilot, PilotConfig, denormalise, normalise

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "pilotnet.onnx"


def _mean_colour_model(path: Path, height: int = 66, width: int = 200) -> Path:
    """cmd = 2 * mean(R, G) - 1 over the input: makes crop, channel order and scaling observable."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Slice", ["m", "starts", "ends", "axes"], ["rg"]),
        helper.make_node("Mul", ["rg", "two"], ["rg2"]),
        helper.make_node("Sub", ["rg2", "one"], ["cmd"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [2]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("cmd", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_crop_rgb_scaling_and_denormalisation(tmp_path: Path) -> None:
    model = _mean_colour_model(tmp_path / "probe.onnx")
    pilot = Pilot(PilotConfig(model=str(model), v_min=2.0, v_max=12.0, w_min=-2.0, w_max=2.0))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:240] = (255, 255, 255)  # white sky: excluded by the crop
    frame[240:] = (0, 0, 255)  # BGR red road: R = 1, G = 0 after RGB conversion
    cmd = pilot(frame, stamp_ns=42)
    assert cmd.raw == pytest.approx((1.0, -1.0), abs=1e-5)
    assert (cmd.v, cmd.w) == pytest.approx((12.0, -2.0), abs=1e-4)
    assert cmd.stamp_ns == 42
    frame[240:] = (0, 128, 0)  # green: G = 128/255
    cmd = pilot(frame)
    assert cmd.w == pytest.approx(-2.0 + (128 / 255) * 4.0, abs=1e-3)
    assert cmd.v == pytest.approx(2.0, abs=1e-4)
    for stage in ("preprocess", "inference", "postprocess", "end_to_end"):
        assert pilot.latency.stats(stage).count == 2
    assert pilot.last_inference_ms >= 0


def test_full_frame_when_crop_bottom_is_zero(tmp_path: Path) -> None:
    pilot = Pilot(PilotConfig(model=str(_mean_colour_model(tmp_path / "p.onnx")), crop_top=0, crop_bottom=0))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[240:] = (0, 0, 255)
    assert pilot(frame).raw[0] == pytest.approx(0.0, abs=0.01)  # half the rows red


def test_normalisation_round_trip_and_clipping() -> None:
    v = np.array([2.0, 7.0, 12.0])
    np.testing.assert_allclose(normalise(v, 2.0, 12.0), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(denormalise(normalise(v, 2.0, 12.0), 2.0, 12.0), v)
    assert denormalise(np.array(3.0), -2.0, 2.0) == 2.0  # clipped to the range


def test_bad_inputs_and_configs_are_named(tmp_path: Path) -> None:
    pilot = Pilot(PilotConfig(model=str(_mean_colour_model(tmp_path / "p.onnx"))))
    with pytest.raises(ValueError, match=r"crop rows 240:480 .* height 240"):
        pilot(np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match="command ranges"):
        PilotConfig(model="x", v_min=5.0, v_max=1.0)
    wrong = _mean_colour_model(tmp_path / "wrong.onnx", 64, 64)
    with pytest.raises(EngineError, match="PilotNet expects"):
        Pilot(PilotConfig(model=str(wrong)))
    with pytest.raises(EngineError, match="not found"):
        Pilot(PilotConfig(model=str(tmp_path / "missing.onnx")))


def test_sample_model_contract_and_config() -> None:
    import onnx
    import yaml  # type: ignore[import-untyped]

    assert MODEL.stat().st_size <= 5 * 1024 * 1024
    m = onnx.load(str(MODEL))
    meta = {p.key: p.value for p in m.metadata_props}
    params = yaml.safe_load((ROOT / "config" / "pilot.yaml").read_text())["/**"]["ros__parameters"]
    for key in ("v_min", "v_max", "w_min", "w_max", "crop_top", "crop_bottom"):
        assert float(meta[key]) == pytest.approx(float(params[key])), key
    pilot = Pilot(PilotConfig(model=str(MODEL)))
    assert pilot.engine.input("image").shape[1:] == (3, 66, 200)
    assert pilot.engine.output("cmd").shape[-1] == 2


def test_sample_model_steers_towards_the_line() -> None:
    """Left of the centre line -> turn right (w < 0); right of it -> turn left (w > 0)."""
    import math

    from trt_perception.sim.circuits import get_circuit
    from trt_perception.sim.render import CircuitRenderer

    c = get_circuit("simple")
    renderer = CircuitRenderer(c)
    pilot = Pilot(PilotConfig(model=str(MODEL)))
    i = 20  # on the first straight
    (x, y), h = c.centerline[i], c.heading()[i]
    left = pilot(renderer.render(x - 2 * math.sin(h), y + 2 * math.cos(h), h).copy())
    right = pilot(renderer.render(x + 2 * math.sin(h), y - 2 * math.cos(h), h).copy())
    centre = pilot(renderer.render(x, y, h).copy())
    assert left.w < -0.1 < 0.1 < right.w
    assert abs(centre.w) < 0.15 and 2.0 <= centre.v <= 12.0


def test_sample_model_accuracy_on_fresh_views() -> None:
    """Held-out views (a seed the training never used) still meet the model card's offline MSE."""
    from tools.train_pilotnet import collect

    images, labels = collect(seed=4242, poses_per_run=40, rollout_s=4.0)
    engine = Pilot(PilotConfig(model=str(MODEL))).engine
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    pred = np.concatenate(
        [engine.infer({"image": x[k : k + 64]})["cmd"].copy() for k in range(0, len(x), 64)]
    )
    err = (np.clip(pred, -1, 1) - labels) ** 2
    assert err[:, 1].mean() < 0.004, err.mean(axis=0)  # steering: card says 0.0008
    assert err[:, 0].mean() < 0.1, err.mean(axis=0)  # speed: card says 0.049


@pytest.mark.ros
def test_pilot_node_publishes_twist_and_diagnostics(start_node, ros_node) -> None:  # type: ignore[no-untyped-def]
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image

    from trt_perception.io.images import numpy_to_image
    from trt_perception.ros.qos import reliable_qos, sensor_qos
    from trt_perception.sim.circuits import get_circuit
    from trt_perception.sim.render import CircuitRenderer

    node = start_node(
        "pilot",
        params_file=ROOT / "config" / "pilot.yaml",
        params={"model": str(MODEL), "diagnostics_period": 0.5},
    )
    twists: list[Twist] = []
    statuses: list = []  # type: ignore[type-arg]
    ros_node.create_subscription(Twist, "cmd_vel", twists.append, reliable_qos(10))
    ros_node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: statuses.extend(s for s in m.status if s.name.startswith("/pilot:")),
        10,
    )
    pub = ros_node.create_publisher(Image, "camera/image_raw", sensor_qos(2))
    c = get_circuit("simple")
    frame = CircuitRenderer(c).render(*c.start_pose())
    good = numpy_to_image(frame, "bgr8")
    bad = numpy_to_image(np.zeros((4, 4), np.uint16), "mono16")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(twists) < 5:
        pub.publish(good)
        ros_node.spin_until(lambda: False, 0.1)
    assert len(twists) >= 5, node.log()
    assert 2.0 <= twists[-1].linear.x <= 12.0 and abs(twists[-1].angular.z) < 0.3
    for _ in range(3):
        pub.publish(bad)
        ros_node.spin_until(lambda: False, 0.1)
    assert ros_node.spin_until(
        lambda: any(s.level >= b"\x01" and "mono16" in s.message for s in statuses), 10
    ), node.log()

    def counted() -> bool:  # the counters are refreshed once per diagnostics period
        values = {kv.key: kv.value for s in statuses for kv in s.values}  # the newest of each key
        return "inference.samples_ms" in values and int(values.get("brain_iterations", 0)) >= 5

    assert ros_node.spin_until(counted, 5), node.log()
    assert node.alive()
