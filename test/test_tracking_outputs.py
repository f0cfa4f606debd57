"""What tracking publishes and scores: tracks as Detection2DArray (ID in ``id``, plate text as a second
hypothesis), the plate event's JSON with its crop, and ``evaluate --task tracking`` on the sample
traffic sequence with the committed models."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from std_msgs.msg import Header

from trt_perception.ros.detection_msgs import tracks_to_msg
from trt_perception.stages.plate_consensus import PlateEvent, VehiclePlate
from trt_perception.stages.tracker import Tracks
from trt_perception.vision.detections import Detections

ROOT = Path(__file__).resolve().parents[1]


def test_tracks_message_carries_ids_and_known_plate_texts() -> None:
    dets = Detections(np.array([[10, 20, 110, 90], [200, 20, 300, 90]]), [0.9, 0.7], [0, 0], ["car", "plate"])
    plate = VehiclePlate(8, np.array([40, 70, 80, 85]), dets.boxes[1], "WB428YH", 0.93, 5, True)
    msg = tracks_to_msg(Tracks(dets, np.array([3, 8])), Header(frame_id="cam"), {8: plate})
    assert [d.id for d in msg.detections] == ["3", "8"]
    assert [len(d.results) for d in msg.detections] == [1, 2]
    second = msg.detections[1].results[1].hypothesis
    assert (second.class_id, round(second.score, 2)) == ("WB428YH", 0.93)
    assert msg.detections[0].results[0].hypothesis.class_id == "car" and msg.header.frame_id == "cam"


def test_plate_event_json_holds_the_crop() -> None:
    crop = np.zeros((30, 120, 3), np.uint8)
    crop[:, ::7] = 255
    event = PlateEvent("final", 4, "KX204TA", 0.91, 3, 12, 3, 100, 500, np.array([1, 2, 121, 32]), crop)
    data = json.loads(event.to_json("camera"))
    assert data["event"] == "final" and data["track_id"] == 4 and data["text"] == "KX204TA"
    assert (data["first_stamp_ns"], data["last_stamp_ns"], data["frame_id"]) == (100, 500, "camera")
    jpg = cv2.imdecode(np.frombuffer(base64.b64decode(data["crop_jpeg_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert jpg.shape == crop.shape


@pytest.mark.slow
def test_evaluate_tracking_on_the_sample_sequence(sample_data: Any, tmp_path: Path) -> None:
    from trt_perception.commands import evaluate as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(
        ["--task", "tracking", "--dataset", str(sample_data.root / "traffic"), "--model",
         str(ROOT / "models/detector.onnx"), "--reader", str(ROOT / "models/plate_reader_ctc.onnx"),
         "--out", str(tmp_path / "report"), "--quiet", "--no-plots"]
    )  # fmt: skip
    assert cmd.run(args) == 0
    m = json.loads((tmp_path / "report" / "report.json").read_text())["configurations"][0]["metrics"]
    assert m["IDF1"] > 0.85 and m["MOTA"] > 0.8 and m["id_switches"] <= 1, m
    assert m["readable_vehicles"] >= 5 and m["vehicle_exact_match"] == 1.0, m
    assert m["frame_exact_match"] > 0.9 and m["reads_per_frame"] < 0.5 * m["gt_vehicles"], m
