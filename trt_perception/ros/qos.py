"""QoS profiles shared by the nodes."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)


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
