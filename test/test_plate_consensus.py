"""Per-vehicle plate consensus: the character vote on synthetic noisy readings, plates given to the
vehicles that contain them, and the gated stage with the committed CTC reader on rendered plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.synth.plates import LETTERS, random_plate_text, render_plate
from trt_perception.stages.plate_consensus import (
    ENDED,
    FINAL,
    PlateConsensus,
    PlateConsensusConfig,
    Reading,
    align,
    plates_to_vehicles,
    vote,
)
from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig
from trt_perception.stages.tracker import Tracks
from trt_perception.vision.detections import Detections

MODELS = Path(__file__).resolve().parents[1] / "models"


def reading(text: str, conf: float | list[float] = 0.95) -> Reading:
    chars = np.full(len(text), conf, np.float32) if np.isscalar(conf) else np.array(conf, np.float32)
    return Reading(text, chars)


def noisy(text: str, rng: np.random.Generator, p_sub: float, p_del: float, p_ins: float) -> Reading:
    """A reader's mistakes: substitutions and CTC-like dropped/doubled characters; wrong characters
    come with a lower probability, as a reader's softmax gives them."""
    out, conf = [], []
    for ch in text:
        u = rng.random()
        if u < p_del:
            continue
        if u < p_del + p_sub:
            out.append(LETTERS[int(rng.integers(len(LETTERS)))])
            conf.append(rng.uniform(0.3, 0.8))
        else:
            out.append(ch)
            conf.append(rng.uniform(0.8, 1.0))
        if rng.random() < p_ins:
            out.append(ch)
            conf.append(rng.uniform(0.3, 0.7))
    return Reading("".join(out), np.array(conf, np.float32))


def test_align_pairs_matches_and_substitutions() -> None:
    assert align("AB123CD", "AB123CD") == [(i, i) for i in range(7)]
    assert align("AB23CD", "AB123CD") == [(0, 0), (1, 1), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert align("AB1123CD", "AB123CD")[-1] == (7, 6)


def test_vote_outvotes_substitutions_and_other_lengths() -> None:
    truth = "WB428YH"
    readings = [reading(truth)] * 5 + [
        reading("MB428YH", [0.6] + [0.95] * 6),  # a nested box's misreading
        reading("WB48YH"),  # CTC dropped a character
        reading("WB4428YH"),  # CTC doubled one
        reading("H6AH", 0.73),  # the plate entering the view
    ]
    c = vote(readings)
    assert c.text == truth and c.agreeing == 5 and c.readings == 9
    assert 0.5 < c.confidence < 0.95


def test_vote_weighs_each_character_by_its_probability() -> None:
    sure = [reading("AB123CD", 0.95)] * 2
    unsure = [reading("AB128CD", [0.95] * 4 + [0.3] + [0.95] * 2)] * 3
    assert vote(sure + unsure).text == "AB123CD"  # 2 x 0.95 > 3 x 0.3 at the fifth character
    assert vote([]).text == "" and vote([reading("")]).readings == 0


def test_consensus_beats_single_readings_on_noisy_sequences() -> None:
    """200 plates, 7 noisy readings each (~35% of single readings wrong): the vote gets >= 97% right."""
    rng = np.random.default_rng(17)
    single = consensus = 0
    for _ in range(200):
        truth = random_plate_text(rng)
        rs = [noisy(truth, rng, 0.04, 0.015, 0.015) for _ in range(7)]
        single += sum(r.text == truth for r in rs)
        consensus += vote(rs).text == truth
    assert single / 1400 < 0.8
    assert consensus / 200 >= 0.97, consensus


def test_plates_go_to_the_vehicle_they_sit_on() -> None:
    far = [500, 200, 700, 380]  # partly hidden behind the near car
    near = [420, 260, 720, 520]
    plates = np.array(
        [
            [540, 470, 600, 490],  # near car's plate
            [560, 340, 620, 360],  # far car's plate, inside both boxes
            [545, 472, 590, 488],  # a nested second box on the near car's plate
            [10, 10, 60, 30],  # on no vehicle
        ],
        np.float32,
    )
    owner = plates_to_vehicles(np.array([far, near], np.float32), plates, np.array([0.9, 0.8, 0.7, 0.9]), 0.8)
    assert owner.tolist() == [1, 0, -1, -1], "the nested second box on the near car is nobody's"


@pytest.fixture(scope="module")
def ctc_reader() -> PlateReader:
    return PlateReader(
        PlateReaderConfig(
            model=str(MODELS / "plate_reader_ctc.onnx"), charset=str(MODELS / "plate_charset.txt")
        )
    )


def scene(text: str, height: int, x: int = 300, y: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A grey frame with the plate pasted at (x, y), ``height`` px tall; its box."""
    plate = render_plate(text, np.random.default_rng(5), height_px=height)
    frame = np.full((720, 1280, 3), 110, np.uint8)
    frame[y : y + plate.shape[0], x : x + plate.shape[1]] = plate
    return frame, np.array([x, y, x + plate.shape[1], y + plate.shape[0]], np.float32)


def test_stage_reads_only_when_due_and_sends_one_final_and_one_ended_event(ctc_reader: PlateReader) -> None:
    text = "KX204TA"
    cfg = PlateConsensusConfig(reinfer_interval=10)
    stage = PlateConsensus(cfg, ctc_reader)
    reads, events, shown = [], [], []
    for f in range(40):
        frame, plate = scene(text, 30 if f < 25 else 36)  # grows by 44% in area at frame 25
        vehicle = plate + np.array([-80, -150, 80, 20], np.float32)
        dets = Detections(np.stack([vehicle, plate]), [0.9, 0.8], [0, 1], ["car", "plate"])
        tracks = Tracks(dets.select(np.array([0])), np.array([7]), np.array([7] if f == 39 else [], np.int64))
        out = stage(frame, dets, tracks, stamp_ns=1000 + f)
        reads.append(out.reads)
        events += out.events
        shown.append(out.plates[0].text)
    # Read until confident (3 agreeing readings), then every 10 frames and once on the growth.
    assert reads[:3] == [1, 1, 1] and sum(reads) <= 3 + 4 + 1, reads
    assert reads[25] == 1
    assert shown[:2] == ["", ""] and shown[2:] == [text] * 38
    assert [(e.kind, e.track_id, e.text) for e in events] == [(FINAL, 7, text), (ENDED, 7, text)]
    end = events[1]
    assert end.first_stamp_ns == 1000 and end.last_stamp_ns == 1039 and end.frames_seen == 40
    assert (
        end.reads == sum(reads)
        and end.confidence >= cfg.min_confidence
        and end.crop.ndim == 3
        and end.crop.size
    )
    assert stage._vehicles == {}, "an ended track's state is freed"


def test_plate_tracks_are_their_own_plates(ctc_reader: PlateReader) -> None:
    """A detector without a vehicle class: the tracker follows the plates, each its own vehicle."""
    frame, plate = scene("LM555KP", 32)
    dets = Detections(plate[None], [0.9], [0], ["plate"])
    stage = PlateConsensus(PlateConsensusConfig(min_agreeing=1), ctc_reader)
    out = stage(frame, dets, Tracks(dets, np.array([3])))
    assert [(p.track_id, p.text) for p in out.plates] == [(3, "LM555KP")]
    assert [e.kind for e in out.events] == [FINAL]
