"""``builtin_interfaces/Time`` (and header stamps) <-> integer nanoseconds or float seconds.

ROS-free: works on any object with ``sec``/``nanosec`` (rclpy, rosbags, test doubles). Integer
nanoseconds are the exact form; seconds are for humans and metrics.
"""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def time_ns(t: Any) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds."""
    return int(t.sec) * NS_PER_S + int(t.nanosec)


def stamp_ns(header: Any) -> int:
    """``std_msgs/Header`` stamp as integer nanoseconds (0 for an unstamped message)."""
    return time_ns(header.stamp)


def time_s(t: Any) -> float:
    """A ``builtin_interfaces/Time`` as float seconds."""
    return t.sec + t.nanosec * 1e-9


def stamp_s(header: Any) -> float:
    """``std_msgs/Header`` stamp as float seconds."""
    return time_s(header.stamp)


def sec_nanosec(ns: int) -> tuple[int, int]:
    """Integer nanoseconds as the ``(sec, nanosec)`` pair of a ``builtin_interfaces/Time``."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return int(sec), int(nanosec)


def set_time(t: Any, ns: int) -> Any:
    """Fill ``t`` (a ``builtin_interfaces/Time``) from integer nanoseconds; returns ``t``."""
    t.sec, t.nanosec = sec_nanosec(ns)
    return t


def seconds_to_ns(seconds: float) -> int:
    """Float seconds as integer nanoseconds, rounded (12.9999999 s does not wrap to 12 s)."""
    return round(seconds * 1e9)
