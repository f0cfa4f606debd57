"""Small, deterministic stand-ins for the evaluation tests: a YOLOv8-layout ONNX detector whose
scores follow pixel colour, a COCO folder of frames it can be scored on, FP16/INT8 copies of the
model, and a rosbag2 (mcap or sqlite3) with images and Detection2DArray ground truth.

The detector is a 8x8 average pool -> 1x1 conv -> + fixed grid: each 8x8 cell is one candidate box
(centre of the cell, 8x8), the ``car`` score is the red level of the cell, ``plate`` the green one.
Frames hold red/green squares aligned to cells, with a few deliberate misses and offsets, so the
mAP is well away from both 0 and 1 and FP16/INT8 change it a little.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SIZE = 64
STRIDE = 8


def make_detector(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = SIZE // STRIDE
    w = np.zeros((6, 3, 1, 1), np.float32)
    w[4, 0, 0, 0] = 1.0  # car <- R (the tensor is RGB)
    w[5, 1, 0, 0] = 1.0  # plate <- G
    ys, xs = np.mgrid[0:g, 0:g].astype(np.float32)
    grid = np.zeros((1, 6, g, g), np.float32)
    grid[0, 0], grid[0, 1] = xs * STRIDE + STRIDE / 2, ys * STRIDE + STRIDE / 2
    grid[0, 2] = grid[0, 3] = STRIDE
    nodes = [
        helper.make_node(
            "AveragePool", ["images"], ["p"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]
        ),
        helper.make_node("Conv", ["p", "w"], ["c"]),
        helper.make_node("Add", ["c", "grid"], ["a"]),
        helper.make_node("Reshape", ["a", "shape"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(grid, "grid"),
        numpy_helper.from_array(np.array([1, 6, g * g], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "standin_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, g * g])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    path.with_name(path.stem + "_labels.txt").write_text("car\nplate\n")
    return path


def make_variants(fp32: Path, frames: list[np.ndarray]) -> dict[str, Path]:
    """FP16 (onnxconverter-common) and INT8 Q/DQ (ONNX Runtime static quantisation) copies."""
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    fp16 = fp32.with_name(fp32.stem + "_fp16.onnx")
    onnx.save(float16.convert_float_to_float16(onnx.load(fp32), keep_io_types=True), fp16)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rgb = [f[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255 for f in frames]
            self._it = iter({"images": np.ascontiguousarray(x)} for x in rgb)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    int8 = fp32.with_name(fp32.stem + "_int8.onnx")
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ)
    for p in (fp16, int8):
        p.with_name(p.stem + "_labels.txt").write_text("car\nplate\n")
    return {"fp16": fp16, "int8": int8}


def _frame(rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    img = np.full((SIZE, SIZE, 3), 20, np.uint8)
    anns = []
    cells = rng.choice((SIZE // STRIDE) ** 2, size=4, replace=False)
    for k, cell in enumerate(cells):
        cy, cx = divmod(int(cell), SIZE // STRIDE)
        x, y = cx * STRIDE, cy * STRIDE
        cat = 1 if k % 2 == 0 else 2
        level = int(rng.integers(60, 255))
        img[y : y + STRIDE, x : x + STRIDE, 2 if cat == 1 else 1] = level  # BGR: red car, green plate
        dx = float(rng.choice([0.0, 0.0, 1.5, 3.0]))  # some GT boxes offset: IoU below 1
        ann = {"category_id": cat, "bbox": [x + dx, float(y), float(STRIDE), float(STRIDE)]}
        if cat == 2:
            ann["text"] = "".join(rng.choice(list("ABC123"), size=5))
        anns.append(ann)
    # a ground-truth object the model cannot see (recall < 1)
    anns.append({"category_id": 1, "bbox": [2.0, 2.0, 5.0, 5.0]})
    return img, anns


def make_dataset(root: Path, n: int = 24, seed: int = 0, t0_ns: int = 1_700_000_000_000_000_000) -> Path:
    """``root/annotations.json`` + ``root/images/*.png``; images carry ``stamp_ns`` (30 Hz)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        img, anns = _frame(rng)
        name = f"{i:06d}.png"
        cv2.imwrite(str(root / "images" / name), img)
        images.append(
            {
                "id": i + 1,
                "file_name": name,
                "width": SIZE,
                "height": SIZE,
                "stamp_ns": t0_ns + i * 33_333_333,
            }
        )
        for a in anns:
            w, h = a["bbox"][2:]
            annotations.append(
                {**a, "id": len(annotations) + 1, "image_id": i + 1, "area": w * h, "iscrowd": 0}
            )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "plate"}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    return root / "annotations.json"


def write_bag(dataset: Path, bag: Path, storage: str = "mcap", period_ns: int = 33_333_333) -> Path:
    """A rosbag2 of the dataset: ``/camera/image_raw`` (bgr8) and ``/ground_truth/detections``
    (Detection2DArray), both stamped with the image's ``stamp_ns``, logged ``period_ns`` apart."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from trt_perception.io.bags import typestore

    ts = typestore()
    T = ts.types
    coco = json.loads(dataset.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(bag, version=8, storage_plugin=plugin) as w:
        cim = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        cgt = w.add_connection("/ground_truth/detections", "vision_msgs/msg/Detection2DArray", typestore=ts)
        for k, im in enumerate(coco["images"]):
            stamp = int(im["stamp_ns"])
            header = T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9),
                frame_id="camera",
            )
            bgr = cv2.imread(str(dataset.parent / "images" / im["file_name"]))
            h, wd = bgr.shape[:2]
            img = T["sensor_msgs/msg/Image"](
                header=header,
                height=h,
                width=wd,
                encoding="bgr8",
                is_bigendian=0,
                step=wd * 3,
                data=bgr.reshape(-1),
            )
            dets = []
            for a in by_image.get(im["id"], []):
                x, y, bw, bh = a["bbox"]
                hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
                    hypothesis=T["vision_msgs/msg/ObjectHypothesis"](
                        class_id=names[a["category_id"]], score=1.0
                    ),
                    pose=T["geometry_msgs/msg/PoseWithCovariance"](
                        pose=T["geometry_msgs/msg/Pose"](
                            position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                        ),
                        covariance=np.zeros(36),
                    ),
                )
                bbox = T["vision_msgs/msg/BoundingBox2D"](
                    center=T["vision_msgs/msg/Pose2D"](
                        position=T["vision_msgs/msg/Point2D"](x=x + bw / 2, y=y + bh / 2), theta=0.0
                    ),
                    size_x=bw,
                    size_y=bh,
                )
                dets.append(
                    T["vision_msgs/msg/Detection2D"](
                        header=header, results=[hyp], bbox=bbox, id=a.get("text", "")
                    )
                )
            arr = T["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)
            t_log = 1_000_000_000 + k * period_ns
            w.write(cim, t_log, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
            w.write(cgt, t_log + 1_000_000, ts.serialize_cdr(arr, "vision_msgs/msg/Detection2DArray"))
    return bag
