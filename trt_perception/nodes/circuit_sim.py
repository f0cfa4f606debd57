"""``circuit_sim`` node: a light circuit simulator for CI and demos (Gazebo stays the real simulator).

A kinematic car (``sim.vehicle.Unicycle``) on a built-in circuit, driven by ``geometry_msgs/Twist`` on
``cmd_vel``. It owns simulated time: every wall-clock tick of ``1/update_rate`` s advances the world by
``speed_up/update_rate`` simulated seconds (in physics steps of at most ``physics_dt``) and publishes
``/clock``; odometry (``nav_msgs/Odometry``, stamped with simulated time) at ``odom_rate`` and the
rendered forward camera (``sensor_msgs/Image`` bgr8, sensor-data QoS) at ``camera_rate``, both in
simulated Hz. The car waits at the start until the first command arrives and stops when commands
are older than ``cmd_timeout`` simulated seconds.
"""

from __future__ import annotations

import math
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Twist
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from ..io.images import numpy_to_image
from ..io.stamps import seconds_to_ns, set_time
from ..ros.diagnostics import WARN
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import reliable_qos, sensor_qos
from ..sim.circuits import get_circuit
from ..sim.render import CameraModel, CircuitRenderer
from ..sim.vehicle import VehicleLimits
from ..sim.world import Simulation

PARAMETERS: tuple[Param, ...] = (
    Param("circuit", "simple", "Built-in circuit: simple | montreal."),
    Param("reverse", False, "Drive the circuit clockwise (start facing the other way)."),
    Param("track_width", 7.0, "Road width in metres."),
    Param("speed_up", 1.0, "Simulated seconds per wall-clock second (the target real-time factor)."),
    Param("update_rate", 100.0, "Wall-clock ticks per second (each publishes /clock)."),
    Param("physics_dt", 0.01, "Largest physics step in simulated seconds."),
    Param("camera_rate", 20.0, "Camera frames per simulated second."),
    Param("odom_rate", 50.0, "Odometry messages per simulated second."),
    Param("cmd_timeout", 0.5, "Simulated seconds without cmd_vel after which the car brakes to a stop."),
    Param("image_width", 640, "Camera image width (the F1 car's camera is 640x480)."),
    Param("image_height", 480, "Camera image height."),
    Param("hfov_deg", 80.0, "Camera horizontal field of view in degrees."),
    Param("camera_height", 0.9, "Camera height above the road in metres."),
    Param("camera_pitch_deg", 4.0, "Camera downward pitch in degrees."),
    Param("max_speed", 15.0, "Largest linear speed the car accepts (m/s)."),
    Param("max_yaw_rate", 4.0, "Largest angular speed the car accepts (rad/s)."),
    Param("max_accel", 8.0, "Linear acceleration limit (m/s^2)."),
    Param("image_topic", "camera/image_raw", "Rendered camera output topic."),
    Param("camera_info_topic", "camera/camera_info", "CameraInfo output topic."),
    Param("odom_topic", "odom", "nav_msgs/Odometry output topic."),
    Param("cmd_vel_topic", "cmd_vel", "geometry_msgs/Twist input topic."),
    Param("clock_topic", "/clock", "rosgraph_msgs/Clock output topic."),
    Param("frame_id", "odom", "Odometry frame."),
    Param("child_frame_id", "base_link", "Odometry child frame."),
    Param("camera_frame_id", "camera", "Camera image frame."),
)


def _yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _stamp(t: float) -> Time:
    """builtin_interfaces/Time from simulated seconds."""
    return set_time(Time(), seconds_to_ns(t))


def _next_due(due: float, period: float, now: float) -> float:
    """Next publication time on a fixed schedule (rates are not rounded up to whole ticks); a
    schedule more than one period behind restarts from now instead of bursting."""
    due += period
    return due if due > now - period else now + period


class CircuitSimNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "circuit_sim"

    def __init__(self) -> None:
        super().__init__("circuit_sim")
        p = self.params
        circuit = get_circuit(str(p["circuit"]), float(p["track_width"]))
        camera = CameraModel(
            width=int(p["image_width"]),
            height=int(p["image_height"]),
            hfov_deg=float(p["hfov_deg"]),
            mount_height=float(p["camera_height"]),
            pitch_deg=float(p["camera_pitch_deg"]),
        )
        limits = VehicleLimits(float(p["max_speed"]), float(p["max_yaw_rate"]), float(p["max_accel"]))
        self.sim = Simulation(circuit, limits=limits, renderer=CircuitRenderer(circuit, camera))
        self.sim.reset(reverse=bool(p["reverse"]))
        self.camera = camera
        self.speed_up = float(p["speed_up"])
        self.tick_sim = self.speed_up / float(p["update_rate"])
        self.physics_dt = float(p["physics_dt"])
        self.camera_period = 1.0 / float(p["camera_rate"])
        self.odom_period = 1.0 / float(p["odom_rate"])
        self.cmd_timeout = float(p["cmd_timeout"])
        self._cmd = (0.0, 0.0)
        self._cmd_time: float | None = None
        self._next_camera = 0.0
        self._next_odom = 0.0
        self._frames = 0
        self.clock_pub = self.publisher(Clock, str(p["clock_topic"]), reliable_qos(10))
        self.odom_pub = self.publisher(Odometry, str(p["odom_topic"]), reliable_qos(50))
        self.image_pub = self.publisher(Image, str(p["image_topic"]), sensor_qos(2))
        self.info_pub = self.publisher(CameraInfo, str(p["camera_info_topic"]), sensor_qos(2))
        self.create_subscription(
            Twist, str(p["cmd_vel_topic"]), self.guarded("cmd_vel", self.on_cmd), reliable_qos(10)
        )
        self.create_timer(1.0 / float(p["update_rate"]), self.guarded("tick", self.tick))
        self.diagnostics.set_value("circuit", circuit.name)
        self.diagnostics.set_value("circuit_length_m", circuit.length)
        self.get_logger().info(
            f"circuit '{circuit.name}' ({circuit.length:.0f} m, width {circuit.width} m), speed-up x{self.speed_up}"
        )

    def on_cmd(self, msg: Twist) -> None:
        self._cmd = (float(msg.linear.x), float(msg.angular.z))
        self._cmd_time = self.sim.time

    def tick(self) -> None:
        t0 = time.perf_counter()
        sim = self.sim
        target = sim.time + self.tick_sim
        while sim.time < target - 1e-9:
            dt = min(self.physics_dt, target - sim.time)
            stale = self._cmd_time is None or sim.time - self._cmd_time > self.cmd_timeout
            v, w = (0.0, 0.0) if stale else self._cmd
            sim.step(v, w, dt)
        self.clock_pub.publish(Clock(clock=_stamp(sim.time)))
        if sim.time >= self._next_odom - 1e-9:
            self._next_odom = _next_due(self._next_odom, self.odom_period, sim.time)
            self.publish_odom()
        if sim.time >= self._next_camera - 1e-9:
            self._next_camera = _next_due(self._next_camera, self.camera_period, sim.time)
            self.publish_camera()
        self.latency.record("step", (time.perf_counter() - t0) * 1e3)

    def publish_odom(self) -> None:
        s = self.sim.state
        msg = Odometry()
        msg.header.stamp = _stamp(self.sim.time)
        msg.header.frame_id = str(self.params["frame_id"])
        msg.child_frame_id = str(self.params["child_frame_id"])
        msg.pose.pose.position.x = s.x
        msg.pose.pose.position.y = s.y
        msg.pose.pose.orientation = _yaw_quaternion(s.yaw)
        msg.twist.twist.linear.x = s.v
        msg.twist.twist.angular.z = s.w
        self.odom_pub.publish(msg)
        off = self.sim.off_track()
        if off:
            self.warn_input("off_track", f"the car left the road at ({s.x:.1f}, {s.y:.1f})", level=WARN)
        self.diagnostics.set_value("sim_time_s", self.sim.time)
        self.diagnostics.set_value("progress_m", self.sim.progress)

    def publish_camera(self) -> None:
        img = self.sim.observe()
        msg = numpy_to_image(img, "bgr8")
        msg.header.stamp = _stamp(self.sim.time)
        msg.header.frame_id = str(self.params["camera_frame_id"])
        self.image_pub.publish(msg)
        self._frames += 1
        self.diagnostics.set_value("frames", self._frames)
        if self.info_pub.get_subscription_count() > 0:
            self.info_pub.publish(self._camera_info(msg.header))

    def _camera_info(self, header) -> CameraInfo:  # type: ignore[no-untyped-def]
        c = self.camera
        f = c.focal
        cx, cy = (c.width - 1) / 2, (c.height - 1) / 2
        info = CameraInfo(header=header, width=c.width, height=c.height, distortion_model="plumb_bob")
        info.d = [0.0] * 5
        info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info


def main(args: list[str] | None = None) -> int:
    return run_node(CircuitSimNode, args)
