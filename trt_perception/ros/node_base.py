"""What every trt_perception node shares: parameters, latency diagnostics, image subscriptions that
report bad input without dying, and a ``main`` that starts and stops rclpy cleanly.

A node subclasses ``PerceptionNode``, lists its own ``PARAMETERS`` (the common ones below are added),
builds its ROS-free stage from ``self.params`` and only converts messages around the stage call.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from ..io.images import ImageEncodingError, image_to_bgr
from ..io.stamps import stamp_ns
from ..metrics.latency import LatencyRecorder
from .diagnostics import DIAGNOSTICS_PARAMETERS, ERROR, WARN, DiagnosticsPublisher
from .files import package_file
from .image_subscription import FASTDDS_PROFILE_NAME, IMAGE_SUBSCRIPTION_PARAMETERS, AdaptiveSubscription
from .params import Param, declare_all
from .problem_log import ProblemLog

COMMON_PARAMETERS: tuple[Param, ...] = (
    Param("latency_window", 300, "Samples kept per stage for the latency statistics."),
    *DIAGNOSTICS_PARAMETERS,
    *IMAGE_SUBSCRIPTION_PARAMETERS,
)


class PerceptionNode(Node):
    """Base of every node: declared parameters, a latency recorder and its diagnostics publisher."""

    #: The node's own parameters; subclasses override. ``COMMON_PARAMETERS`` are added to them.
    PARAMETERS: tuple[Param, ...] = ()
    #: Component name in the diagnostics status (``<node>: <component>``).
    COMPONENT = "perception"

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._problem_log = ProblemLog(self.get_logger())
        param_errors: list[str] = []
        self.params: dict[str, Any] = declare_all(self, self.all_parameters(), param_errors)
        self.latency = LatencyRecorder(window=int(self.params["latency_window"]))
        self.diagnostics = DiagnosticsPublisher.from_params(self, self.latency, self.COMPONENT, self.params)
        if param_errors:
            self.startup_error("parameters", "; ".join(param_errors))
        self._image_subs: list[AdaptiveSubscription] = []

    @classmethod
    def all_parameters(cls) -> tuple[Param, ...]:
        return tuple(cls.PARAMETERS) + COMMON_PARAMETERS

    # -- problems: one log line per throttle period, a WARN/ERROR status, never an exception upward
    def warn_input(
        self, key: str, message: str, level: int = WARN, throttle_s: float = 5.0, problem: str = ""
    ) -> None:
        """Report bad input or a transient failure: a log line per problem per throttle period and a
        diagnostics status under ``key``; keep serving. ``problem`` tells apart problems that share a
        status key (each bad encoding gets its own line)."""
        self._problem_log(f"{key}:{problem}", level, f"{key}: {message}", throttle_s)
        self.diagnostics.report(key, level, message)

    def startup_error(self, key: str, message: str) -> None:
        """A configuration that cannot work (bad parameter, missing file): one error line and an ERROR
        status that stays; the node keeps running (diagnostics, parameters) instead of crash-looping."""
        self._problem_log(f"startup:{key}", ERROR, f"{key}: {message}", 0.0)
        self.diagnostics.report(key, ERROR, message, ttl_s=None)

    def guarded(self, key: str, fn: Callable[..., None]) -> Callable[..., None]:
        """Wrap a callback so an exception in it is reported (``key``) instead of killing the node."""

        def wrapper(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                self.warn_input(key, f"{type(exc).__name__}: {exc}", problem=type(exc).__name__)
                self.get_logger().debug(traceback.format_exc())

        return wrapper

    # -- images
    def input_frame(self, msg: Image, ready: bool) -> tuple[np.ndarray, int] | None:
        """``(bgr, stamp_ns)`` of an input image, or None after a throttled report: the node has no
        model (``ready`` False, an ERROR: see the startup error) or the image cannot be converted."""
        if not ready:
            # The startup error already holds the ERROR status (it never expires); a report under its
            # key here would replace it with one that does, and the node would look healthy again.
            self._problem_log(
                "input:no_model", ERROR, "image dropped: no model loaded (see the startup error)"
            )
            return None
        try:
            return image_to_bgr(msg), stamp_ns(msg.header)
        except ImageEncodingError as exc:
            self.warn_input("input", str(exc), problem=f"{msg.encoding}:{msg.width}x{msg.height}")
            return None

    def subscribe_images(self, topic: str, callback: Callable[[Image], None], depth: int = 1) -> Any:
        """An image subscription with the reliability of its publishers (``AdaptiveSubscription``:
        reliable publishers on Fast DDS defaults lose nothing), DDS-lost messages counted on
        /diagnostics, and a watchdog that warns when no publisher exists or nothing arrives."""
        sub = AdaptiveSubscription(
            self,
            Image,
            topic,
            self.guarded("image", callback),
            depth,
            report=lambda key, level, message: self.warn_input(key, message, level),
            no_data_timeout_s=float(self.params["no_data_timeout"]),
            set_value=self.diagnostics.set_value,
        )
        self._image_subs.append(sub)
        return sub


def default_fastdds_profile() -> Path | None:
    """The shipped Fast DDS image profile, from the installed share folder or the source tree."""
    path = package_file(f"config/{FASTDDS_PROFILE_NAME}")
    return path if path is not None and path.is_file() else None


#: ROS 2 distributions whose Fast DDS (2.x) reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3
#: (Kilted and later) reads FASTDDS_DEFAULT_PROFILES_FILE and warns that the old name is deprecated.
_FASTDDS2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")
_TRANSPORT_CHOICES = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
)


def use_fast_image_transport(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point Fast DDS at the shipped image profile unless the user chose a transport already.

    With Fast DDS defaults best-effort 720p images never arrive between processes; the profile adds a
    shared-memory transport with 32 MiB segments and keeps UDPv4, so these nodes still talk to
    processes running Fast DDS defaults. Must run before ``rclpy.init`` creates the participant.
    Returns the profile in use (None when the user chose builtin transports or none was found).
    """
    env = os.environ if environ is None else environ
    legacy = env.get("ROS_DISTRO", "") in _FASTDDS2_DISTROS
    if not any(env.get(k) for k in _TRANSPORT_CHOICES):
        profile = default_fastdds_profile()
        if profile is None:
            env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
            return None
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    chosen = env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    if legacy and chosen and not env.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = chosen  # launch files set the new name only
    return chosen or None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """``main`` of every node: init, spin until Ctrl-C or shutdown, destroy, exit code (the node's
    ``exit_code`` attribute when it sets one, e.g. a replay that could not open its bag)."""
    use_fast_image_transport()
    # rclpy's own SIGINT handler shuts the context down first, while capture threads and timers still
    # publish ("RCLError: publisher's context is invalid" at every Ctrl-C). Without it, Ctrl-C (and
    # launch's SIGTERM) raise KeyboardInterrupt in spin: the node stops its threads, then rclpy shuts down.
    rclpy.init(
        args=list(args) if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO
    )
    for sig in (signal.SIGINT, signal.SIGTERM):  # also where the parent left SIGINT ignored (`cmd &`)
        signal.signal(sig, _interrupt)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A node that ends itself (``context.try_shutdown()`` from a worker thread, e.g. bag_replay at the
        # end of the bag) can catch a timer callback mid-publish on a handle being destroyed: that is a
        # normal exit, not a failure. Anything raised while the context is still up is a real error.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            shutdown = getattr(node, "on_shutdown", None)
            if callable(shutdown):
                shutdown()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return int(getattr(node, "exit_code", 0))
