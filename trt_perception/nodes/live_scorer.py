"""``live_scorer`` node: score a running pipeline's outputs against a bag's ground truth.

Started next to ``bag_replay`` and the pipeline (``launch/bag_eval.launch.xml``). It reads the
ground truth from the bag itself (a Detection2DArray topic or a COCO JSON keyed by stamp) at
startup, matches every ``detections`` / ``plates`` / ``segmentation/mask`` message to it by header
stamp, and writes the same Markdown/JSON/CSV report as ``trt-perception evaluate`` once the outputs
stop coming for ``idle_timeout`` seconds (again whenever more arrive), when ``expected_frames`` are
in, and at shutdown. Latency is image arrival -> output arrival at this node.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

from ..evaluation.live import LiveScorer, bag_ground_truth_masks
from ..evaluation.report import write_report
from ..evaluation.sources import BagSource
from ..io.bags import BagReadError
from ..io.images import image_to_numpy
from ..io.stamps import stamp_ns
from ..ros.detection_msgs import msg_to_detections
from ..ros.node_base import PerceptionNode, run_node
from ..ros.params import Param
from ..ros.qos import latched_qos, reliable_qos, sensor_qos

PARAMETERS: tuple[Param, ...] = (
    Param("bag", "", "rosbag2 the replay plays: its ground truth is read from it."),
    Param("gt_json", "", "COCO JSON whose images carry stamp_ns (instead of gt_topic)."),
    Param("gt_topic", "/ground_truth/detections", "Bag topic with the Detection2DArray ground truth."),
    Param(
        "gt_mask_topic", "/ground_truth/segmentation", "Bag topic with mono8 GT class masks (segmentation)."
    ),
    Param("bag_image_topic", "/camera/image_raw", "Image topic inside the bag (to list its frames)."),
    Param("tasks", ["detection", "plates"], "What to score: detection, plates, segmentation."),
    Param("image_topic", "camera/image_raw", "Replayed images (arrival time = latency start); '' disables."),
    Param("detections_topic", "detections", "Pipeline detections (vision_msgs/Detection2DArray)."),
    Param("plates_topic", "plates", "Pipeline plate readings (Detection2DArray, class_id = text)."),
    Param("mask_topic", "segmentation/mask", "Pipeline class mask (mono8)."),
    Param("conf_threshold", 0.01, "Detections below this score are not scored."),
    Param(
        "segmentation_classes",
        ["background", "road", "lane_marking", "vehicle"],
        "Class names by index for segmentation (used when the ground truth does not list them).",
    ),
    Param("report_dir", "live_report", "Folder for report.md/json/csv (one subfolder per task)."),
    Param("idle_timeout", 3.0, "Seconds without new outputs after which the report is written."),
    Param(
        "expected_frames", 0, "Write the report as soon as this many frames are scored (0: all GT frames)."
    ),
    Param("plots", True, "Also write the PNG plots."),
    Param(
        "exit_when_done",
        False,
        "Shut down after the first report (all expected frames in, or idle_timeout after the last output).",
    ),
)


class LiveScorerNode(PerceptionNode):
    PARAMETERS = PARAMETERS
    COMPONENT = "live_scorer"

    def __init__(self) -> None:
        super().__init__("live_scorer")
        p = self.params
        self.scorer: LiveScorer | None = None
        self._last_output = 0.0
        self._written_at = -1  # outputs count at the last report
        try:
            tasks = [str(t) for t in p["tasks"]]
            if not str(p["bag"]):
                raise ValueError("parameter 'bag' is empty: the ground truth is read from the replayed bag")
            mask_topic = str(p["gt_mask_topic"]) if "segmentation" in tasks else None
            source = BagSource(
                str(p["bag"]),
                str(p["bag_image_topic"]),
                gt_json=str(p["gt_json"]) or None,
                gt_topic=None if str(p["gt_json"]) else str(p["gt_topic"]),
                mask_topic=mask_topic,
            )
            if not source.segmentation_classes:
                source.segmentation_classes = [str(c) for c in p["segmentation_classes"]]
            self.scorer = LiveScorer(source, tasks, float(p["conf_threshold"]))
            if mask_topic:
                self.scorer.set_gt_masks(bag_ground_truth_masks(source))
        except (ValueError, OSError, BagReadError) as exc:
            self.startup_error("ground_truth", f"cannot score: {exc}")
            return
        for w in source.warnings:
            self.warn_input("ground_truth", w)
        self.expected = int(p["expected_frames"]) or self.scorer.expected_frames
        self.get_logger().info(
            f"scoring {tasks} against {self.scorer.expected_frames} GT frames of {p['bag']}"
        )
        qos = reliable_qos(50)
        if str(p["image_topic"]):
            self.subscribe_images(str(p["image_topic"]), self.on_image, 50)
        if "detection" in tasks:
            self.create_subscription(
                Detection2DArray,
                str(p["detections_topic"]),
                self.guarded("detections", self.on_detections),
                qos,
            )
        if "plates" in tasks:
            self.create_subscription(
                Detection2DArray, str(p["plates_topic"]), self.guarded("plates", self.on_plates), qos
            )
        if "segmentation" in tasks:
            self.create_subscription(
                Image, str(p["mask_topic"]), self.guarded("mask", self.on_mask), sensor_qos(10)
            )
        self.status_pub = self.publisher(String, "~/report", latched_qos())
        self.create_timer(0.5, self._maybe_write)

    # -- inputs
    def on_image(self, msg: Image) -> None:
        assert self.scorer is not None
        self.scorer.add_image(stamp_ns(msg.header), time.monotonic())

    def on_detections(self, msg: Detection2DArray) -> None:
        assert self.scorer is not None
        t = time.monotonic()
        d = msg_to_detections(msg)
        labels = [d.labels[i] for i in d.class_ids.tolist()]
        self.scorer.add_detections(stamp_ns(msg.header), t, d.boxes, d.scores, labels)
        self._last_output = t

    def on_plates(self, msg: Detection2DArray) -> None:
        assert self.scorer is not None
        t = time.monotonic()
        d = msg_to_detections(msg)
        texts = [d.labels[i] for i in d.class_ids.tolist()]
        self.scorer.add_plates(stamp_ns(msg.header), t, d.boxes, texts)
        self._last_output = t

    def on_mask(self, msg: Image) -> None:
        assert self.scorer is not None
        t = time.monotonic()
        self.scorer.add_mask(stamp_ns(msg.header), t, np.ascontiguousarray(image_to_numpy(msg)))
        self._last_output = t

    # -- reports
    def _maybe_write(self) -> None:
        if self.scorer is None:
            return
        got = self.scorer.received()
        if got in (0, self._written_at):
            return
        complete = got >= self.expected
        idle = time.monotonic() - self._last_output > float(self.params["idle_timeout"])
        if complete or idle:
            self.write_reports()
            if self.params["exit_when_done"]:
                self.context.try_shutdown()

    def write_reports(self) -> list[Path]:
        if self.scorer is None:
            return []
        self._written_at = self.scorer.received()
        root = Path(str(self.params["report_dir"]))
        written = []
        for task in self.scorer.tasks:
            result = self.scorer.result(task)
            if not result.results[0].frames:
                continue
            paths = write_report(result, root / task, plots=bool(self.params["plots"]))
            written.append(paths["json"])
            scores = result.results[0].scores
            primary = result.task.primary
            value = scores.metrics.get(primary, float("nan")) if scores else float("nan")
            self.diagnostics.set_value(f"{task}.{primary}", f"{value:.4f}")
            self.diagnostics.set_value(f"{task}.frames", str(result.frames))
        if written:
            self.get_logger().info(f"report for {self._written_at} frames: " + ", ".join(map(str, written)))
            self.status_pub.publish(String(data=", ".join(map(str, written))))
        return written

    def on_shutdown(self) -> None:
        if self.scorer is not None and self.scorer.received() != self._written_at:
            self.write_reports()


def main(args: list[str] | None = None) -> int:
    return run_node(LiveScorerNode, args)
