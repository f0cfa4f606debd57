"""Train the sample road segmenter on synthetic scenes and export ``models/segmenter.onnx``.

    .venv/bin/python -m tools.train_segmenter            # CPU, 2 threads; writes models/segmenter.onnx
    .venv/bin/python -m tools.train_segmenter --eval-only

A small U-Net / Fast-SCNN-like network: a plain 3x3 conv encoder to 1/32 with pooled global context,
additive top-down fusion back to 1/4 (Fast-SCNN's skip at 1/4) and a 1x1 classifier. Plain convs, not
depthwise ones: PyTorch's CPU depthwise backward made training 6x slower. Fully convolutional with dynamic H, W (multiples of 32); the output is low-resolution logits
``logits`` [N, 4, H/4, W/4], so bilinear upsampling + argmax is the post-processing. Trained at mixed
sizes (scenes rendered at 384..896 px wide) so it holds from 384x384 to 768x1344 inputs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from tools.training import add_common_arguments, train_then_evaluate

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["background", "road", "lane_marking", "vehicle"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
TRAIN_SEED = 2
SIZES = ((384, 224), (512, 288), (640, 352), (768, 448), (896, 512), (448, 448))  # (W, H), multiples of 32


def render_sample(index: int, seed: int = TRAIN_SEED) -> tuple[bytes, bytes]:
    """Scene ``index`` at one of SIZES: (JPEG image, PNG class mask)."""
    from tools.synth.scene import random_scene, render

    rng = np.random.default_rng([seed, index])
    w, h = SIZES[index % len(SIZES)]
    frame = render(random_scene(rng), w, h, int(rng.integers(2**31)))
    ok1, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(80, 96))])
    ok2, png = cv2.imencode(".png", frame.mask)
    assert ok1 and ok2
    return jpeg.tobytes(), png.tobytes()


def _cache_path(count: int) -> Path:
    from tools.synth.dataset import generator_digest

    return ROOT / "data" / "cache" / f"segmenter_{count}_{generator_digest()}.pkl"


def build_cache(count: int, path: Path, workers: int = 1) -> list[tuple[bytes, bytes]]:
    """The training set, rendered once (deterministic) and cached as JPEG bytes in a pickle."""
    from tools.synth.dataset import cached_render

    return cached_render(path, count, render_sample, workers)


def _model_class():  # torch is a training-only dependency: import it lazily
    import torch
    from torch import nn

    def conv(c1: int, c2: int, k: int = 3, s: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.ReLU(inplace=True)
        )

    class TinySeg(nn.Module):
        def __init__(self, nc: int = 4) -> None:
            super().__init__()
            self.d4 = nn.Sequential(conv(3, 12, 3, 2), conv(12, 24, 3, 2))  # 1/4, kept as the skip
            self.d8 = nn.Sequential(conv(24, 32, 3, 2), conv(32, 32))
            self.d16 = nn.Sequential(conv(32, 48, 3, 2), conv(48, 48))
            self.d32 = nn.Sequential(conv(48, 64, 3, 2), conv(64, 64))
            self.ctx = conv(64, 64, 1)
            self.u16, self.u8, self.u4 = conv(64, 48, 1), conv(48, 32, 1), conv(32, 24, 1)
            self.fuse = conv(24, 24)
            self.head = nn.Conv2d(24, nc, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            def up(t: torch.Tensor) -> torch.Tensor:
                return nn.functional.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)

            x4 = self.d4(x)
            x8 = self.d8(x4)
            x16 = self.d16(x8)
            x32 = self.d32(x16)
            x32 = x32 + self.ctx(x32.mean((2, 3), keepdim=True))  # global context, any input size
            y16 = x16 + up(self.u16(x32))
            y8 = x8 + up(self.u8(y16))
            y4 = x4 + up(self.u4(y8))
            return self.head(self.fuse(y4))

    return TinySeg


def normalise(bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 [H, W, 3] -> RGB ImageNet-normalised float32 [3, H, W]."""
    return ((bgr[:, :, ::-1].astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def train(args: argparse.Namespace) -> None:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = [] if args.epochs == 0 else build_cache(args.images, _cache_path(args.images),
                                                   args.workers)  # fmt: skip
    net = _model_class()(len(CLASSES))
    if args.state:
        net.load_state_dict(torch.load(args.state, map_location="cpu"))
    net = net.to(device)
    # Batches hold one size: group indices by size (index % len(SIZES)).
    groups = [list(range(k, len(data), len(SIZES))) for k in range(len(SIZES))]
    steps = args.epochs * sum(len(g) // args.batch for g in groups)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=max(steps, 1), pct_start=0.1)
    # Lane markings are thin and rare: weight them up so their IoU is learned, not averaged away.
    weight = torch.tensor([1.0, 1.0, 3.0, 1.5], device=device)
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(args.epochs):
        net.train()
        batches = [g[i : i + args.batch] for g in (list(rng.permutation(g)) for g in groups)
                   for i in range(0, len(g) - args.batch + 1, args.batch)]  # fmt: skip
        total = 0.0
        for bi in rng.permutation(len(batches)):
            imgs, masks = [], []
            for j in batches[bi]:
                jpeg, png = data[j]
                img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
                if rng.random() < 0.5:
                    img, mask = img[:, ::-1], mask[:, ::-1]
                imgs.append(normalise(img))
                masks.append(np.ascontiguousarray(mask))
            x = torch.from_numpy(np.stack(imgs)).to(device)
            y = torch.from_numpy(np.stack(masks)).to(device).long()
            logits = torch.nn.functional.interpolate(
                net(x), size=y.shape[1:], mode="bilinear", align_corners=False
            )
            loss = torch.nn.functional.cross_entropy(logits, y, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / max(1, len(batches)):.4f} "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    net = net.cpu().eval()
    torch.save(net.state_dict(), args.out.with_suffix(".pt"))
    export(net, args.out, torch)
    print(
        f"training {train_s:.0f} s wall, {cpu_s:.0f} s CPU ({args.device}, {args.threads} threads) -> {args.out}"
    )


def export(net, out: Path, torch) -> None:  # type: ignore[no-untyped-def]
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, 3, 352, 640)
    torch.onnx.export(net, (x,), str(out), input_names=["input"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"input": {2: "height", 3: "width"}, "logits": {2: "height_4", 3: "width_4"}},
                      dynamo=False)  # fmt: skip
    m = onnx.load(str(out))
    for k, v in {"classes": json.dumps(CLASSES), "output_stride": "4", "input_multiple": "32",
                 "mean": json.dumps(MEAN.tolist()), "std": json.dumps(STD.tolist())}.items():  # fmt: skip
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(out))


def predict(session, bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Class mask at the image's resolution: resize to ``size`` (W, H), logits upsampled, argmax."""
    h, w = bgr.shape[:2]
    x = normalise(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR))[None]
    logits = session.run(None, {"input": x})[0][0]  # [C, H/4, W/4]
    up = cv2.resize(logits.transpose(1, 2, 0), (w, h), interpolation=cv2.INTER_LINEAR)
    return up.argmax(2).astype(np.uint8)


def evaluate(model: Path, coco_json: Path, masks_dir: Path, images_dir: Path, size: tuple[int, int] = (640, 352),
             limit: int = 0) -> dict[str, float]:  # fmt: skip
    """Per-class IoU and mIoU over the set's masks, at the source resolution."""
    import onnxruntime as ort

    from trt_perception.metrics.segmentation import confusion_matrix, iou_per_class, mean_iou

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    images = json.loads(coco_json.read_text())["images"][: limit or None]
    conf = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    for info in images:
        stem = Path(info["file_name"]).stem
        pred = predict(session, cv2.imread(str(images_dir / info["file_name"])), size)
        gt = cv2.imread(str(masks_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        conf += confusion_matrix(gt, pred, len(CLASSES))
    iou = iou_per_class(conf)
    return {**{f"iou_{c}": float(v) for c, v in zip(CLASSES, iou)}, "miou": mean_iou(conf)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "models" / "segmenter.onnx")
    p.add_argument("--images", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    add_common_arguments(p)
    args = p.parse_args(argv)
    return train_then_evaluate(
        args, train, lambda val: evaluate(args.out, val / "annotations.json", val / "masks", val / "images")
    )


if __name__ == "__main__":
    raise SystemExit(main())
