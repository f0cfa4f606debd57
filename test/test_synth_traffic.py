"""Traffic sequences with identities: each vehicle keeps its ID and plate, comes and goes, the MOT
file matches the COCO annotations, same seed -> same bytes."""

from __future__ import annotations

import numpy as np

from tools.synth.scene import CAR, PLATE
from tools.synth.traffic import Z_FAR, mot_lines, traffic, traffic_frames


def test_vehicles_enter_leave_and_keep_their_identity() -> None:
    frames = [f for _, f in traffic_frames(11, 6.0, 10.0, 640, 360)]
    plates: dict[int, set[str]] = {}
    seen: list[set[int]] = []
    for f in frames:
        cars = {a.track_id for a in f.annotations if a.category_id == CAR}
        seen.append(cars)
        for a in f.annotations:
            if a.category_id == PLATE:
                assert a.track_id in cars, "a plate carries its car's identity"
                plates.setdefault(a.track_id, set()).add(a.text)
    assert all(len(t) == 1 for t in plates.values()), "a vehicle keeps its plate"
    assert len({t for ts in plates.values() for t in ts}) == len(plates), "one plate per vehicle"
    ids = set().union(*seen)
    entered = {i for i in ids if i not in seen[0]}
    left = {i for i in ids if i not in seen[-1]}
    assert entered and left, (entered, left)


def test_traffic_has_both_directions_and_passing() -> None:
    _, vehicles = traffic(np.random.default_rng(3), 120.0, per_minute=30.0)
    assert len(vehicles) >= 50
    assert {v.speed < 0 for v in vehicles} == {True, False}
    assert all(v.z0 == Z_FAR for v in vehicles if v.speed < 0)
    assert any(v.lane0 != v.lane1 for v in vehicles), "some change lanes (and pass the others)"


def test_mot_lines_match_the_annotations_and_are_deterministic() -> None:
    a = [f for _, f in traffic_frames(5, 1.0, 10.0, 640, 360)]
    b = [f for _, f in traffic_frames(5, 1.0, 10.0, 640, 360)]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    lines = mot_lines(a)
    assert lines == mot_lines(b)
    cars = sum(1 for f in a for ann in f.annotations if ann.category_id == CAR)
    assert len(lines) == cars > 0
    frame, track, *_ = lines[0].split(",")
    assert int(frame) == 1 and int(track) > 0 and lines[0].endswith(",1,1,1")
