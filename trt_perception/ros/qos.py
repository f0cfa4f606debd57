"""QoS profiles shared by the nodes, and the one way they make publishers (standard ``qos_overrides``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Best-effort, keep-last ``depth``: matches both best-effort and reliable image publishers."""
    return QoSProfile(
        depth=depth,
        **{k: getattr(qos_profile_sensor_data, k) for k in ("reliability", "durability", "history")},
    )


def reliable_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
    )


def latched_qos(depth: int = 1) -> QoSProfile:
    """Reliable + transient-local: late subscribers get the last value (engine status, circuit)."""
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
    )


def overridable_publisher(create: Callable[..., Any], msg_type: Any, topic: str, qos: QoSProfile) -> Any:
    """``create`` (a node's ``create_publisher`` or ``create_lifecycle_publisher``) with the standard
    ``qos_overrides./<topic>.publisher.{history,depth,reliability}`` parameters, which users set at
    startup (e.g. in a params file). rclpy applies them to the profile in place: a copy keeps them off
    the caller's shared one."""
    return create(
        msg_type,
        topic,
        copy.copy(qos),
        qos_overriding_options=QoSOverridingOptions.with_default_policies(),
    )
