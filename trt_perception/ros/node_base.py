"""What every trt_perception node shares: parameters (live ones applied, the others refused with the
reason while configured), latency diagnostics, image subscriptions that report bad input without dying,
the lifecycle of nodes that hold a model or a device, and a ``main`` that starts and stops rclpy cleanly.

A node subclasses ``PerceptionNode`` (a plain node: bag replay, simulator, scorers) or
``ManagedPerceptionNode`` (a lifecycle node: detector, reader, segmenter, pilot, pipeline, camera),
lists its own ``PARAMETERS`` (the common ones below are added), builds its ROS-free stage from
``self.params`` and only converts messages around the stage call.

A managed node's lifecycle: ``configure`` runs ``build()`` (load and validate: the model, the stage, the
publishers); a failure leaves it unconfigured with an ERROR status on /diagnostics naming the cause and,
with ``exit_on_error``, ends the process with code 1 so launch can respawn it (so does a failed
activate, e.g. a camera that cannot open). ``activate`` runs
``start()`` (subscriptions, timers, capture) and enables the lifecycle publishers; ``deactivate``
undoes it (``stop()``); ``cleanup`` drops the stage and its engine (``release()``). With ``autostart``
(the default) the node configures and activates itself at startup, so ``ros2 run`` stays one step.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from ..io.images import ImageEncodingError, image_to_bgr
from ..io.stamps import stamp_ns
from ..metrics.latency import LatencyRecorder
from .diagnostics import DIAGNOSTICS_PARAMETERS, ERROR, WARN, DiagnosticsPublisher
from .files import package_file
from .image_subscription import FASTDDS_PROFILE_NAME, IMAGE_SUBSCRIPTION_PARAMETERS, AdaptiveSubscription
from .live_params import check_changes
from .params import Param, declare_all
from .problem_log import ProblemLog
from .qos import overridable_publisher

COMMON_PARAMETERS: tuple[Param, ...] = (
    Param("latency_window", 300, "Samples kept per stage for the latency statistics."),
    *DIAGNOSTICS_PARAMETERS,
    *IMAGE_SUBSCRIPTION_PARAMETERS,
)

#: Parameters of every lifecycle node (in its ``PARAMETERS``, so they reach its config and table).
LIFECYCLE_PARAMETERS: tuple[Param, ...] = (
    Param(
        "autostart",
        True,
        "Configure and activate at startup; false: wait for lifecycle transitions (ros2 lifecycle set).",
    ),
    Param(
        "exit_on_error",
        False,
        "Exit with code 1 when configure (or activate) fails (launch files set it, so respawn can act); "
        "false: stay up, unconfigured (inactive), with an ERROR status naming the cause.",
    ),
    Param(
        "enabled",
        True,
        "False pauses processing without tearing anything down: no stage runs, nothing goes out, the "
        "inputs stay open (camera read, subscriptions kept) and their frames are dropped, counted on "
        "/diagnostics; true resumes.",
        live=True,
    ),
)


#: The diagnostics' note while ``enabled`` is false.
PAUSED = "paused (enabled: false): input frames dropped"


class PerceptionNode(Node):
    """Base of every node: declared parameters, a latency recorder and its diagnostics publisher."""

    #: The node's own parameters; subclasses override. ``COMMON_PARAMETERS`` are added to them.
    PARAMETERS: tuple[Param, ...] = ()
    #: Component name in the diagnostics status (``<node>: <component>``).
    COMPONENT = "perception"

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._problem_log = ProblemLog(self.get_logger())
        #: Parameters whose value could not be used (wrong type, out of range): each names the cause.
        self.param_errors: list[str] = []
        declared = self.all_parameters()
        self._declared = {p.name: p for p in declared}
        self.params: dict[str, Any] = declare_all(self, declared, self.param_errors)
        self.latency = LatencyRecorder(window=int(self.params["latency_window"]))
        self.diagnostics = DiagnosticsPublisher.from_params(self, self.latency, self.COMPONENT, self.params)
        if self.param_errors:
            self.startup_error("parameters", "; ".join(self.param_errors))
        self._image_subs: list[AdaptiveSubscription] = []
        # After the declarations: rclpy calls it for every later set (and for its own qos_overrides).
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @classmethod
    def all_parameters(cls) -> tuple[Param, ...]:
        return tuple(cls.PARAMETERS) + COMMON_PARAMETERS

    # -- parameters set at run time
    def _on_set_parameters(self, changes: list[Parameter[Any]]) -> SetParametersResult:
        values, reason = check_changes(self._declared, changes, self.why_locked)
        if not reason and values:
            previous = {name: self.params[name] for name in values}
            self.params.update(values)
            try:
                self.apply_parameters(set(values))
            except Exception as exc:  # e.g. a class the model does not know: refused, nothing changed
                self.params.update(previous)
                reason = f"{', '.join(sorted(values))}: {exc}"
        if reason:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        if values:
            self.get_logger().info("set " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
            self._forget_parameter_errors(set(values))
            if "enabled" in values:
                self.diagnostics.paused = "" if values["enabled"] else PAUSED
        return SetParametersResult(successful=True)

    def _forget_parameter_errors(self, names: set[str]) -> None:
        """A parameter given a good value no longer fails the next configure."""
        kept = [e for e in self.param_errors if not any(e.startswith(f"parameter '{n}'") for n in names)]
        if len(kept) < len(self.param_errors):
            self.param_errors[:] = kept
            if kept:
                self.diagnostics.report("parameters", ERROR, "; ".join(kept), ttl_s=None)
            else:
                self.diagnostics.clear("parameters")

    def why_locked(self, name: str) -> str:
        """Why the non-live parameter ``name`` cannot change now (empty: it can)."""
        return "is read at startup: restart the node to change it"

    def apply_parameters(self, names: set[str]) -> None:
        """Apply the live parameters ``names`` (``self.params`` holds their new values) from the next
        frame; raise to refuse them (the old values come back and the exception is the reason)."""

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile) -> Any:
        """A publisher whose history, depth and reliability users override with the standard
        ``qos_overrides./<topic>.publisher.<policy>`` parameters (``qos.overridable_publisher``)."""
        return overridable_publisher(self.create_publisher, msg_type, topic, qos)

    def finish(self) -> None:
        """The end of the process (``run_node``): stop threads before rclpy shuts down."""
        self.on_shutdown()

    def on_shutdown(self) -> None:
        """Stop worker threads and timers (plain nodes override); called once at the end."""

    # -- problems: one log line per throttle period, a WARN/ERROR status, never an exception upward
    def warn_input(
        self, key: str, message: str, level: int = WARN, throttle_s: float = 5.0, problem: str = ""
    ) -> None:
        """Report bad input or a transient failure: a log line per problem per throttle period and a
        diagnostics status under ``key``; keep serving. ``problem`` tells apart problems that share a
        status key (each bad encoding gets its own line)."""
        self._problem_log(f"{key}:{problem}", level, f"{key}: {message}", throttle_s)
        self.diagnostics.report(key, level, message)

    def camera_log(self, level: int, line: str) -> None:
        """``CameraSource``'s ``log(level, line)`` (a ``logging`` level): its one line per change of
        state into the node's log. One call site per severity: rclpy refuses a call site whose
        severity changes."""
        logger = self.get_logger()
        if level >= logging.ERROR:
            logger.error(line)
        elif level >= logging.WARNING:
            logger.warning(line)
        elif level >= logging.INFO:
            logger.info(line)
        else:
            logger.debug(line)

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
    @property
    def processing(self) -> bool:
        """True while input frames are to be processed (a plain node: always)."""
        return True

    def input_frame(self, msg: Image, ready: bool) -> tuple[np.ndarray, int] | None:
        """``(bgr, stamp_ns)`` of an input image to process, or None for one that is not, counted as a
        dropped input frame on /diagnostics: the node is paused (``enabled`` false), has no model
        (``ready`` False, an ERROR: see the startup error) or the image cannot be converted (a
        throttled report)."""
        if not self.processing:
            self.latency.record_dropped(arrived=True)
            return None
        if not ready:
            self.latency.record_dropped(arrived=True)
            # The startup error already holds the ERROR status (it never expires); a report under its
            # key here would replace it with one that does, and the node would look healthy again.
            self._problem_log(
                "input:no_model", ERROR, "image dropped: no model loaded (see the startup error)"
            )
            return None
        try:
            return image_to_bgr(msg), stamp_ns(msg.header)
        except ImageEncodingError as exc:
            self.latency.record_dropped(arrived=True)
            self.warn_input("input", str(exc), problem=f"{msg.encoding}:{msg.width}x{msg.height}")
            return None

    def subscribe_images(self, topic: str, callback: Callable[[Image], None], depth: int = 1) -> Any:
        """An image subscription with the reliability of its publishers (``AdaptiveSubscription``:
        reliable publishers on Fast DDS defaults lose nothing), a watchdog that warns when no publisher
        exists or nothing arrives, and on the ``<fqn>: input`` status: the age of every frame delivered
        (node clock: sim time under ``use_sim_time``), publisher sequence gaps as dropped frames, and
        the subscription's values (reliability, DDS-lost messages, publishers). The callback records
        no frame age itself; a frame it does not process is dropped through ``input_frame``."""
        sub = AdaptiveSubscription(
            self,
            Image,
            topic,
            self.guarded("image", callback),
            depth,
            report=lambda key, level, message: self.warn_input(key, message, level),
            no_data_timeout_s=float(self.params["no_data_timeout"]),
            set_value=self.diagnostics.set_input_value,
            recorder=self.latency,
        )
        self._image_subs.append(sub)
        return sub


_SUCCESS, _FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
#: Lifecycle states a transition may start from (the others are transitions under way, or finalized).
_PRIMARY = ("unconfigured", "inactive", "active")


class ManagedPerceptionNode(LifecycleNodeMixin, PerceptionNode):
    """A lifecycle node holding a model or a device; subclasses fill in the four steps:

    ``build()`` (configure: load and validate; raise naming the cause), ``start()`` (activate:
    subscriptions, timers, capture: register them with ``track``), ``stop()`` (deactivate: the tracked
    entities are destroyed; override to stop threads too), ``release()`` (cleanup: drop the stage and
    its engine). Their ``__init__`` only calls ``super().__init__(name)``: with ``autostart`` the node
    configures and activates from here, so what the steps use is made in ``build()`` (or is a class
    attribute). Publishers come from ``publisher()``: lifecycle publishers, silent unless active.
    """

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        PerceptionNode.__init__(self, node_name, **kwargs)
        LifecycleNodeMixin.__init__(self)
        #: The process exit code ``run_node`` returns: 1 after a failed configure with exit_on_error.
        self.exit_code = 0
        self._active = False
        self._tracked: list[Any] = []
        self._publishers_made: list[Any] = []
        self.diagnostics.paused = "" if self.params["enabled"] else PAUSED
        if self.params["autostart"] and self.trigger_configure() == _SUCCESS:
            self.trigger_activate()

    @property
    def processing(self) -> bool:
        """True while inputs are to be processed: active and ``enabled``."""
        return self._active and bool(self.params["enabled"])

    @property
    def lifecycle_state(self) -> str:
        return str(self._state_machine.current_state[1])

    # -- the steps subclasses fill in
    def build(self) -> None:
        """Configure: load and validate everything the node needs; raise naming the cause."""

    def start(self) -> None:
        """Activate: start processing (subscriptions, timers, capture; ``track`` them)."""

    def stop(self) -> None:
        """Deactivate: stop processing. Destroys what ``track`` holds; override to stop threads too."""
        for entity in reversed(self._tracked):
            if isinstance(entity, AdaptiveSubscription):
                entity.destroy()
            elif entity in self.timers:
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._tracked.clear()
        self._image_subs.clear()

    def release(self) -> None:
        """Cleanup: drop the stage and its engine."""

    def stages_ready(self, *stages: Any) -> None:
        """After ``build`` warmed ``stages`` up: timings start at the first camera frame, and each fact a
        model lacks (labels, ...; ``stage.warnings``) is a WARN on /diagnostics until the next configure,
        not a silent default."""
        self.latency.reset()
        warnings = [w for stage in stages if stage is not None for w in stage.warnings]
        for warning in warnings:
            self.get_logger().warning(warning)
        if warnings:
            self.diagnostics.report("model_info", WARN, "; ".join(warnings), ttl_s=None)

    def track(self, entity: Any) -> Any:
        """``entity`` (a subscription, timer or ``AdaptiveSubscription``), destroyed at deactivate."""
        self._tracked.append(entity)
        return entity

    def subscribe_images(self, topic: str, callback: Callable[[Image], None], depth: int = 1) -> Any:
        return self.track(super().subscribe_images(topic, callback, depth))

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile) -> Any:
        """A lifecycle publisher (publishes only while active; destroyed at cleanup) whose history, depth
        and reliability users override with the standard ``qos_overrides`` parameters."""
        pub = overridable_publisher(self.create_lifecycle_publisher, msg_type, topic, qos)
        self._publishers_made.append(pub)
        return pub

    def why_locked(self, name: str) -> str:
        if self.lifecycle_state == "unconfigured":
            return ""  # read by the next configure
        return (
            "is read at configure: deactivate and clean up the node, set it, then configure and activate "
            "(ros2 lifecycle set), or restart the node"
        )

    # -- lifecycle transitions (rclpy turns an exception here into a silent ERROR: none escapes)
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.param_errors:  # already an ERROR status and log line, naming each parameter
            return self._transition_failed("configure", "")
        self.diagnostics.clear("model_info")  # the model's warnings are the new build's
        try:
            self.build()
        except Exception as exc:  # whatever the cause, a failed configure that names it
            self.get_logger().debug(traceback.format_exc())
            self._release_all()
            return self._transition_failed("configure", str(exc) or type(exc).__name__)
        self.diagnostics.clear("configure")
        self.diagnostics.clear("activate")
        return super().on_configure(state)

    def _transition_failed(self, key: str, message: str) -> TransitionCallbackReturn:
        """An ERROR status and line under ``key`` naming the cause; with exit_on_error, exit code 1."""
        if message:
            self.startup_error(key, message)
        if self.params["exit_on_error"]:
            self.exit_code = 1
            self.get_logger().fatal(f"{key} failed and exit_on_error is set: exiting with code 1")
            self.diagnostics.publish()  # the cause, for whoever watches /diagnostics
            # Once the transition is complete (shutting down inside it fails it): spin returns and
            # run_node exits with exit_code.
            self.create_timer(0.0, self.context.try_shutdown)
        return _FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.start()
        except Exception as exc:  # e.g. a camera that cannot open: stays inactive, says why
            self.get_logger().debug(traceback.format_exc())
            self.stop()
            return self._transition_failed("activate", str(exc) or type(exc).__name__)
        self.diagnostics.clear("activate")
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return super().on_cleanup(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stop()
        self._release_all()
        return _SUCCESS  # back to unconfigured

    def on_shutdown(self, state: LifecycleState | None = None) -> TransitionCallbackReturn:  # type: ignore[override]
        """The shutdown transition, and what in-process users call when they are done."""
        self._active = False
        self.stop()
        self._release_all()
        return _SUCCESS

    def _release_all(self) -> None:
        self.release()
        for pub in self._publishers_made:
            self.destroy_lifecycle_publisher(pub)
        self._publishers_made.clear()

    def finish(self) -> None:
        if self.context.ok() and self.lifecycle_state in _PRIMARY:
            self.trigger_shutdown()  # runs on_shutdown and tells lifecycle managers "finalized"
        else:
            self.on_shutdown()


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


class _StopRequest:
    """SIGINT/SIGTERM handler: while the node is being built, stop there (KeyboardInterrupt); once it
    spins, only set a flag the spin loop checks. An exception raised from a signal handler lands at any
    bytecode, also inside rclpy's C++ take (pybind11 turns it into "RuntimeError: Unable to convert call
    argument") and the node exits 1 with a traceback instead of 0."""

    def __init__(self) -> None:
        self.requested = False
        self.spinning = False

    def __call__(self, *_: object) -> None:
        self.requested = True
        if not self.spinning:
            raise KeyboardInterrupt


def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """``main`` of every node: init, spin until Ctrl-C or shutdown, destroy, exit code (the node's
    ``exit_code`` attribute when it sets one: a replay that could not open its bag, a lifecycle node
    whose configure failed with ``exit_on_error``)."""
    use_fast_image_transport()
    # rclpy's own SIGINT handler shuts the context down first, while capture threads and timers still
    # publish ("RCLError: publisher's context is invalid" at every Ctrl-C). Without it, Ctrl-C (and
    # launch's SIGTERM) raise KeyboardInterrupt in spin: the node stops its threads, then rclpy shuts down.
    rclpy.init(
        args=list(args) if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO
    )
    stop = _StopRequest()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also where the parent left SIGINT ignored (`cmd &`)
        signal.signal(sig, stop)
    node = None
    try:
        node = factory()
        executor = rclpy.get_global_executor()
        executor.add_node(node)
        stop.spinning = True
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # a stop request is seen within 0.1 s
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A node that ends itself (``context.try_shutdown()`` from a worker thread, e.g. bag_replay at the
        # end of the bag) can catch a timer callback mid-publish on a handle being destroyed: that is a
        # normal exit, not a failure. Anything raised while the context is still up is a real error.
        if rclpy.ok() and not stop.requested:
            raise
    finally:
        if isinstance(node, PerceptionNode):
            node.finish()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return int(getattr(node, "exit_code", 0))
