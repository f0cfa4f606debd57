"""A ROS domain of one test alone, for tests that start node processes: a node or publisher left over
from an earlier test of the run (same pid-derived domain) must not be discovered there."""

from __future__ import annotations

import os
import zlib

import pytest


def use_own_domain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set ROS_DOMAIN_ID (10-99, from the pid and the test's name, never the run's own) for this test;
    call it from a fixture that ``ros_node`` and ``start_node`` come after."""
    taken = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    domain = 10 + (os.getpid() + zlib.crc32(request.node.name.encode())) % 90
    domain = domain if domain != taken else 10 + (domain - 9) % 90
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return str(domain)
