"""Train the sample plate readers on synthetic reader crops and export them to ONNX.

    .venv/bin/python -m tools.train_plate_reader --variant ctc     # -> models/plate_reader_ctc.onnx
    .venv/bin/python -m tools.train_plate_reader --variant heads   # -> models/plate_reader_heads.onnx

Each takes about 10 minutes on 2 CPU cores (``--threads 2 --workers 2``, the defaults).

Both share one small convolutional backbone over a 32x160 crop (PP-OCR rec pre-processing, see
``trt_perception.vision.text.prepare_text_crops``):

* ``ctc``: CRNN without recurrence (1-D convolutions along the width, TensorRT-friendly) and a CTC
  head: ``x`` [N,3,32,160] -> ``probs`` [N,40,C] softmax, blank = class 0.
* ``heads``: the per-character-heads reader of the plate-reading thesis (a backbone followed by
  independent fully connected softmax heads, trained with cross entropy): ``chars`` [N,7,C], class 0
  = no character, plus a format head ``format`` [N,M] (the plate layout, the thesis' "country").

Training data are ``tools.synth.plates.reader_crop`` crops (perspective, loose/tight boxes,
12-48 px plate height, blur, noise, JPEG), generated in parallel with per-chunk seeds, so the set is
the same for any worker count. Everything is seeded; PyTorch on the CPU is deterministic for these
ops, so a rerun reproduces the committed models up to float rounding of the thread count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from tools.synth.plates import CHARSET, DEFAULT_FORMAT, random_plate_text, reader_crop_with_centres

HEIGHT, WIDTH = 32, 160
CLASSES = ["", *CHARSET]  # class 0: CTC blank / "no character" for the heads
#: Layouts the readers learn (weights favour the default the sample scenes use); the heads model's
#: format head predicts the index into this tuple.
FORMATS = ("LLDDDLL", "DDDDLLL", "LLDDLLL", "LLLDDD")
FORMAT_WEIGHTS = (0.55, 0.15, 0.15, 0.15)
HEADS = max(len(f) for f in FORMATS)
CHUNK = 500
#: Plate heights (px) in the sample scenes (``tools.synth.scene``: 1280x720, plates 0.2 m tall at
#: 5 m .. the distance where they are 20 px, focal 0.75-1.1 x width -> 20 .. 0.2*1.1*1280/5 = 56 px).
SCENE_PLATE_HEIGHT = (20, 56)
#: The broad reader distribution of ``reader_crop`` (all layouts, down to 12 px).
HARD_PLATE_HEIGHT = (12, 48)

#: Each variant's recipe (explicit flags override it), measured on 2 CPU cores: ~45 s rendering
#: 30k crops + ~9 min training (12,168 steps at ~0.045 s). Dense per-column targets (``--dense``)
#: are what make this possible: without them both readers sit on the from-scratch CTC/heads plateau
#: (0 exact matches after 4,000+ steps; see the model cards). The CTC reader learns every layout;
#: the per-character-heads reader, like the thesis' fixed-format design, the sample scenes' one.
RECIPES: dict[str, dict] = {
    "ctc": {"layouts": "all"},
    "heads": {"layouts": "default"},
}
COMMON_RECIPE = {
    "plate_height": HARD_PLATE_HEIGHT,
    "train_size": 30000,
    "epochs": 26,
    "batch": 64,
    "lr": 3e-3,
    "target_accuracy": 0.0,
    "dense": 1.0,
}


def _make_chunk(args: tuple[int, int, int, bool, tuple[int, int]]) -> tuple[np.ndarray, ...]:
    """``n`` crops resized for the reader (uint8 [n,32,160,3], right-padded), widths, texts, formats,
    heights, and each character's centre column in the resized crop ([n,HEADS] float32, NaN past the text)."""
    import cv2

    from trt_perception.vision.text import resize_text_crop

    cv2.setNumThreads(1)
    seed, chunk, n, default_only, plate_height = args
    rng = np.random.default_rng([seed, chunk])
    images = np.zeros((n, HEIGHT, WIDTH, 3), np.uint8)
    widths = np.zeros(n, np.int64)
    fmts = np.zeros(n, np.int64)
    heights = np.zeros(n, np.int64)
    centres = np.full((n, HEADS), np.nan, np.float32)
    texts = []
    for i in range(n):
        f = 0 if default_only else int(rng.choice(len(FORMATS), p=FORMAT_WEIGHTS))
        text = random_plate_text(rng, FORMATS[f])
        crop, xy = reader_crop_with_centres(text, rng, plate_height=plate_height)
        heights[i] = crop.shape[0]
        resized = resize_text_crop(crop, HEIGHT, WIDTH)
        centres[i, : len(text)] = (xy[:, 0] + 0.5) * resized.shape[1] / crop.shape[1] - 0.5
        images[i, :, : resized.shape[1]] = resized
        widths[i] = resized.shape[1]
        fmts[i] = f
        texts.append(text)
    return images, widths, np.array(texts), fmts, heights, centres


def make_split(
    seed: int,
    n: int,
    workers: int,
    default_only: bool = False,
    cache: Path | None = None,
    plate_height: tuple[int, int] = HARD_PLATE_HEIGHT,
) -> dict:
    """A deterministic set of ``n`` reader crops (same bytes for any ``workers``), cached under ``cache``.

    ``default_only``: every plate in the sample scenes' layout ``LLDDDLL``; ``plate_height``: the
    plate's pixel height range (``reader_crop``).
    """
    lo, hi = plate_height
    path = cache / f"plates_v2_{seed}_{n}_{int(default_only)}_{lo}_{hi}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {k: ([str(t) for t in z[k]] if k == "texts" else z[k]) for k in z.files}
    jobs = [
        (seed, c, min(CHUNK, n - c * CHUNK), default_only, (lo, hi)) for c in range((n + CHUNK - 1) // CHUNK)
    ]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_make_chunk, jobs)
    else:
        parts = [_make_chunk(j) for j in jobs]
    split = {
        "images": np.concatenate([p[0] for p in parts]),
        "widths": np.concatenate([p[1] for p in parts]),
        "texts": [str(t) for p in parts for t in p[2]],
        "formats": np.concatenate([p[3] for p in parts]),
        "heights": np.concatenate([p[4] for p in parts]),
        "centres": np.concatenate([p[5] for p in parts]),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: (np.array(v) if k == "texts" else v) for k, v in split.items()})
    return split


def build_model(variant: str):  # -> torch.nn.Module; lazy torch: `--help` is instant
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class Backbone(nn.Module):
        """32x160 -> [N,128,40] column features (stride 4 along the width)."""

        def __init__(self) -> None:
            super().__init__()
            # Two stride-2 convolutions first: the costly layers run at 8x40.
            self.convs = nn.Sequential(
                *block(3, 16, 2),  # 16x80
                *block(16, 32, 2),  # 8x40
                *block(32, 48),
                nn.MaxPool2d((2, 1)),  # 4x40
                *block(48, 64),
                *block(64, 96),
                nn.MaxPool2d((2, 1)),  # 2x40
                nn.Conv2d(96, 128, (2, 1), bias=False),  # 1x40
                nn.BatchNorm2d(128),
                nn.ReLU(inplace=True),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.convs(x).squeeze(2)

    class CTCReader(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbone()
            self.context = context()
            self.classifier = nn.Conv1d(128, len(CLASSES), 1)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            f = self.backbone(x)
            logits = self.classifier(f + self.context(f))  # [N,C,T]
            return {"logits": logits.permute(0, 2, 1)}

    def context() -> nn.Sequential:
        # Sequence context along the width with dilated 1-D convolutions instead of an LSTM.
        return nn.Sequential(
            nn.Conv1d(128, 128, 3, padding=1, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Conv1d(128, 128, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
        )

    class HeadsReader(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = Backbone()
            self.context = context()
            self.reduce = nn.Sequential(nn.Conv1d(128, 32, 1), nn.ReLU(inplace=True))
            self.shared = nn.Sequential(
                nn.Flatten(), nn.Dropout(0.1), nn.Linear(32 * WIDTH // 4, 384), nn.ReLU(inplace=True)
            )
            self.heads = nn.ModuleList(nn.Linear(384, len(CLASSES)) for _ in range(HEADS))
            self.format_head = nn.Linear(384, len(FORMATS))
            # Training-only CTC classifier on the backbone's columns: it teaches the backbone what a
            # character looks like long before the position-specific heads agree (not exported).
            self.aux_ctc = nn.Conv1d(128, len(CLASSES), 1)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            f = self.backbone(x)
            z = self.shared(self.reduce(f + self.context(f)))
            chars = torch.stack([h(z) for h in self.heads], dim=1)  # [N,K,C]
            out = {"logits": chars, "format": self.format_head(z)}
            if self.training:
                out["ctc_logits"] = self.aux_ctc(f).permute(0, 2, 1)
            return out

    return CTCReader() if variant == "ctc" else HeadsReader()


def decode_texts(out: dict, variant: str) -> list[str]:
    """Greedy texts of a batch of model outputs with the runtime's decoders (format masking for heads)."""
    from trt_perception.vision.text import ctc_greedy_decode, heads_decode

    probs = out["logits"].softmax(2).detach().numpy()
    if variant == "ctc":
        return [t for t, _ in ctc_greedy_decode(probs, CLASSES)]
    fmt = out["format"].softmax(1).detach().numpy()
    return [t for t, _ in heads_decode(probs, CLASSES, formats=list(FORMATS), format_probs=fmt)]


def split_accuracy(model, split: dict, variant: str, batch: int = 250) -> float:
    """Exact match of the PyTorch model on a split (eval mode; restores training mode)."""
    import torch

    model.eval()
    preds: list[str] = []
    with torch.no_grad():
        for s in range(0, len(split["texts"]), batch):
            x = to_batch(
                torch.from_numpy(split["images"][s : s + batch]),
                torch.from_numpy(split["widths"][s : s + batch]),
            )
            preds += decode_texts(model(x.contiguous(memory_format=torch.channels_last)), variant)
    model.train()
    return float(np.mean([p == t for p, t in zip(preds, split["texts"])]))


def to_batch(images, widths):
    """uint8 crops [B,32,160,3] -> float [-1,1] BGR NCHW with the columns right of each crop set to 0.

    The same arithmetic as ``prepare_text_crops`` on already resized crops; torch tensors on any device.
    """
    import torch

    x = images.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    cols = torch.arange(WIDTH, device=x.device)[None, :] < widths[:, None]
    return x * cols[:, None, None, :]


def augment(x, widths, centres, gen):
    """Cheap batch augmentation on top of the generated crops: shift/scale/rotate, contrast, noise.

    Returns the batch and the character centres' columns moved by the same affine warp.
    """
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(lo: float, hi: float):
        return torch.rand(n, generator=gen, device=x.device) * (hi - lo) + lo

    angle = u(-0.05, 0.05)
    scale = u(0.9, 1.1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = scale * torch.cos(angle)
    theta[:, 0, 1] = -torch.sin(angle) * HEIGHT / WIDTH
    theta[:, 1, 0] = torch.sin(angle) * WIDTH / HEIGHT
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, 0, 2] = u(-0.04, 0.04)
    theta[:, 1, 2] = u(-0.1, 0.1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # grid_sample reads the input at theta @ (output coordinates): invert it for where each centre
    # lands (normalised coordinates, align_corners=False); characters sit at mid-height.
    src = torch.stack([(2 * centres + 1) / WIDTH - 1, torch.zeros_like(centres)], -1) - theta[:, None, :, 2]
    dst = torch.linalg.solve(theta[:, None, :, :2], src.unsqueeze(-1)).squeeze(-1)
    centres = ((dst[..., 0] + 1) * WIDTH - 1) / 2
    x = x * u(0.6, 1.3)[:, None, None, None] + u(-0.2, 0.2)[:, None, None, None]
    x = x + torch.randn(x.shape, generator=gen, device=x.device) * u(0.0, 0.08)[:, None, None, None]
    cols = torch.arange(WIDTH, device=x.device)[None, :] < widths[:, None]
    return x.clamp(-1, 1) * cols[:, None, None, :], centres


def column_targets(centres, targets, columns: int):
    """Dense per-column classes [N,columns] for the column classifiers: each character's class at
    the column over its centre (stride ``WIDTH / columns``), its two neighbours ignored (-100: the
    stroke spans them) except a column between two characters, which is blank like every other.
    Supervising where characters are skips the slow start of CTC, which must first discover the
    alignment, and the argmax stays a valid CTC path (a blank separates any two characters)."""
    import torch

    n, k = targets.shape
    stride = WIDTH / columns
    col = torch.round((centres - (stride - 1) / 2) / stride)
    valid = (targets > 0) & torch.isfinite(col) & (col >= 0) & (col < columns)
    col = torch.where(valid, col, torch.zeros_like(col)).long()
    rows = torch.arange(n, device=targets.device)[:, None].expand(n, k)
    out = torch.zeros(n, columns + 2, dtype=torch.long, device=targets.device)  # +1 guard each side
    for shift in (-1, 1):
        out[rows[valid], col[valid] + 1 + shift] = -100
    # Two characters two columns apart: the column between them must be blank, or "DD" reads "D".
    pair = valid[:, :-1] & valid[:, 1:] & (col[:, 1:] - col[:, :-1] == 2)
    out[rows[:, :-1][pair], col[:, :-1][pair] + 2] = 0
    out[rows[valid], col[valid] + 1] = targets[valid]
    return out[:, 1:-1]


def encode_targets(texts: list[str]) -> np.ndarray:
    """[N,HEADS] class indices, padded with class 0."""
    lookup = {c: i for i, c in enumerate(CLASSES)}
    out = np.zeros((len(texts), HEADS), np.int64)
    for i, t in enumerate(texts):
        out[i, : len(t)] = [lookup[c] for c in t]
    return out


def train(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = build_model(args.variant)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
    if args.epochs == 0:
        return {"model": model.eval(), "generate_s": 0.0, "train_s": 0.0}
    # NHWC is ~1.5x faster for these small convolutions on the CPU (oneDNN); same weights.
    model = model.to(args.device, memory_format=torch.channels_last)
    default_only = args.layouts == "default"
    t0 = time.perf_counter()
    train_set = make_split(
        args.seed, args.train_size, args.workers, default_only, args.cache, tuple(args.plate_height)
    )
    # Early stopping watches the training distribution (its own seed, not a held-out one).
    stop_set = (
        make_split(args.seed + 3000, 500, args.workers, default_only, args.cache, tuple(args.plate_height))
        if args.target_accuracy > 0
        else None
    )
    gen_s = time.perf_counter() - t0
    targets = torch.from_numpy(encode_targets(train_set["texts"]))
    lengths = torch.tensor([len(t) for t in train_set["texts"]])
    formats = torch.from_numpy(train_set["formats"])
    print(f"generated {args.train_size} training crops in {gen_s:.0f} s", flush=True)

    steps_per_epoch = args.train_size // args.batch
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)

    def ctc_loss(logits: torch.Tensor, idx: np.ndarray, tgt: torch.Tensor) -> torch.Tensor:
        logp = logits.log_softmax(2).permute(1, 0, 2)  # [T,N,C]
        t_len = torch.full((len(idx),), logp.shape[0], dtype=torch.long)
        return ctc(logp, tgt, t_len, lengths[idx])  # padded [N,K] targets, lengths say where they end

    order_rng = np.random.default_rng(args.seed + 1)
    aug_gen = torch.Generator(device=args.device).manual_seed(args.seed + 2)
    # The whole set lives on the training device as uint8; batches are cut and augmented there.
    images = torch.from_numpy(train_set["images"]).to(args.device)
    widths = torch.from_numpy(train_set["widths"]).to(args.device)
    centres = torch.from_numpy(train_set["centres"]).to(args.device)
    t1 = time.perf_counter()
    deadline = t1 + args.max_minutes * 60 if args.max_minutes else float("inf")
    stopped_early = False
    steps = 0
    history: list[tuple[int, float]] = []

    def dense_loss(logits: torch.Tensor, cx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        cols = column_targets(cx, tgt, logits.shape[1])
        return F.cross_entropy(logits.flatten(0, 1), cols.flatten(), ignore_index=-100)

    for epoch in range(args.epochs):
        if stopped_early:
            break
        model.train()
        perm = order_rng.permutation(args.train_size)
        total = 0.0
        for s in range(steps_per_epoch):
            if time.perf_counter() > deadline:
                print(f"stopping at step {steps}: --max-minutes {args.max_minutes} reached", flush=True)
                stopped_early = True
                break
            idx = perm[s * args.batch : (s + 1) * args.batch]
            didx = torch.from_numpy(idx).to(args.device)
            x = to_batch(images[didx], widths[didx])
            cx = centres[didx]
            if args.augment:
                x, cx = augment(x, widths[didx], cx, aug_gen)
            out = model(x.contiguous(memory_format=torch.channels_last))
            tgt = targets[idx].to(args.device)
            if args.variant == "ctc":
                loss = ctc_loss(out["logits"], idx, tgt)
                if args.dense > 0:
                    loss = loss + args.dense * dense_loss(out["logits"], cx, tgt)
            else:
                loss = F.cross_entropy(out["logits"].flatten(0, 1), tgt.flatten(), label_smoothing=0.05)
                loss = loss + 0.2 * F.cross_entropy(out["format"], formats[idx].to(args.device))
                if args.aux_ctc > 0:
                    loss = loss + args.aux_ctc * ctc_loss(out["ctc_logits"], idx, tgt)
                if args.dense > 0:
                    loss = loss + args.dense * dense_loss(out["ctc_logits"], cx, tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
            steps += 1
            if stop_set is not None and steps % args.check_every == 0:
                acc = split_accuracy(model, stop_set, args.variant)
                history.append((steps, acc))
                print(f"step {steps}: early-stop set exact match {acc:.3f}", flush=True)
                if acc >= args.target_accuracy:
                    print(f"target {args.target_accuracy} reached at step {steps}: stopping", flush=True)
                    stopped_early = True
                    break
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {float(total) / steps_per_epoch:.4f} "
            f"({time.perf_counter() - t1:.0f} s)",
            flush=True,
        )
    train_s = time.perf_counter() - t1
    return {
        "model": model.cpu().to(memory_format=torch.contiguous_format).eval(),
        "generate_s": gen_s,
        "train_s": train_s,
        "stopped_early": stopped_early,
        "steps": steps,
        "early_stop_history": history,
    }


def export(model, variant: str, path: Path) -> None:
    """ONNX opset 17 (TorchScript exporter), softmax inside, dynamic batch, charset in metadata."""
    import warnings

    import onnx
    import torch

    class Export(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor):
            out = self.inner(x)
            if variant == "ctc":
                return out["logits"].softmax(2)
            return out["logits"].softmax(2), out["format"].softmax(1)

    names = ["probs"] if variant == "ctc" else ["chars", "format"]
    path.parent.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
    torch.onnx.export(
        Export(model),
        (torch.zeros(1, 3, HEIGHT, WIDTH),),
        str(path),
        input_names=["x"],
        output_names=names,
        dynamic_axes={n: {0: "N"} for n in ["x", *names]},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    meta = {
        "character": "\n".join(CHARSET),
        "blank_index": "0",
        "preprocess": "BGR; resize to height 32 keeping aspect (width ceil(32*w/h) capped at 160), "
        "(x/255-0.5)/0.5, left-aligned, zero right padding",
        "decoder": variant,
    }
    if variant == "heads":
        meta["formats"] = "\n".join(FORMATS)
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "trt_perception tools.train_plate_reader"
    onnx.save(proto, str(path))


def evaluate(path: Path, split: dict, batch: int = 64) -> dict:
    """Exact match and character accuracy of an exported model with the package's decoders.

    Also per crop height (a proxy for the plate's pixel height) and, for the heads model, without the
    format head's masking (what a decoder that ignores the format output gets).
    """
    import torch

    from trt_perception.inference.factory import open_engine
    from trt_perception.vision.text import ctc_greedy_decode, heads_decode, load_charset

    engine = open_engine(path)
    out_name = engine.outputs[0].name
    charset = load_charset(None, engine.metadata)
    formats = engine.metadata["formats"].split("\n") if "formats" in engine.metadata else None
    texts = split["texts"]
    preds: list[str] = []
    unmasked: list[str] = []
    for s in range(0, len(texts), batch):
        idx = np.arange(s, min(s + batch, len(texts)))
        x = to_batch(torch.from_numpy(split["images"][idx]), torch.from_numpy(split["widths"][idx]))
        out = engine.infer({"x": x.numpy()})
        if out_name == "probs":
            preds += [t for t, _ in ctc_greedy_decode(out["probs"], charset)]
        else:
            preds += [
                t for t, _ in heads_decode(out["chars"], charset, formats=formats, format_probs=out["format"])
            ]
            unmasked += [t for t, _ in heads_decode(out["chars"], charset)]
    ok = np.array([p == t for p, t in zip(preds, texts)])
    result = text_scores(preds, texts)
    if unmasked:
        result["exact_match_without_format_head"] = round(
            float(np.mean([p == t for p, t in zip(unmasked, texts)])), 4
        )
    h = split["heights"]
    for lo, hi in ((0, 16), (16, 20), (20, 24), (24, 32), (32, 1000)):
        sel = (h >= lo) & (h < hi)
        if sel.any():
            result[f"exact_match_crop_h_{lo}_{hi if hi < 1000 else 'up'}"] = round(float(ok[sel].mean()), 4)
    return result


def evaluate_scene_plates(path: Path, variant: str) -> dict:
    """Exact match on the plates of the sample scenes' held-out set through ``PlateReader.read_crops``.

    Ground-truth boxes + the stage's 5 % padding stand in for detections (as ``test_plate_models``);
    ``data/val`` is generated if missing.
    """
    from tools.make_samples import val_plate_crops
    from trt_perception.stages.plate_reader import PlateReader, PlateReaderConfig

    reader = PlateReader(PlateReaderConfig(model=str(path), decoder=variant, max_batch=32))
    crops, texts = val_plate_crops(reader)
    return text_scores([t for t, _ in reader.read_crops(crops)], texts)


def text_scores(preds: list[str], texts: list[str]) -> dict:
    """Exact match and positional character accuracy (the cards' columns), rounded, with n."""
    chars = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(preds, texts)) / sum(len(t) for t in texts)
    return {
        "exact_match": round(float(np.mean([p == t for p, t in zip(preds, texts)])), 4),
        "char_accuracy": round(float(chars), 4),
        "n": len(texts),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=("ctc", "heads"), required=True)
    p.add_argument(
        "--out", type=Path, default=None, help="ONNX path (default models/plate_reader_<variant>.onnx)"
    )
    p.add_argument(
        "--layouts", choices=("default", "all"), default=None, help=f"default: {DEFAULT_FORMAT} only"
    )
    p.add_argument("--plate-height", type=int, nargs=2, default=None, metavar=("LO", "HI"))
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--val-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        help="stop once the early-stop set (500 scene-distribution crops) is read this well (0: off)",
    )
    p.add_argument("--check-every", type=int, default=250, help="steps between early-stop checks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the machine is shared)")
    p.add_argument("--workers", type=int, default=2, help="processes generating crops")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--max-minutes", type=float, default=0.0, help="stop training at the next epoch after this"
    )
    p.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=True, help="batch augmentation"
    )
    p.add_argument("--aux-ctc", type=float, default=0.5, help="heads: weight of the training-only CTC loss")
    p.add_argument(
        "--dense",
        type=float,
        default=None,
        help="weight of the per-column cross entropy on the column classifier (0: off; recipe's)",
    )
    p.add_argument("--metrics", type=Path, default=None, help="write a JSON summary here")
    p.add_argument(
        "--init", type=Path, default=None, help="start from this state dict (--epochs 0: export only)"
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="also save the PyTorch state dict here")
    p.add_argument("--cache", type=Path, default=None, help="keep generated crop sets here (.npz) for reruns")
    args = p.parse_args(argv)
    for key, value in (COMMON_RECIPE | RECIPES[args.variant]).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    out = args.out or Path("models") / f"plate_reader_{args.variant}.onnx"

    result = train(args)
    if args.checkpoint:
        import torch

        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(result["model"].state_dict(), args.checkpoint)
    export(result["model"], args.variant, out)
    # Held-out sets (seeds no training or early-stop set uses): the sample scenes' distribution
    # (layout LLDDDLL, 20-56 px plates), and for information the broad all-layouts 12-48 px one.
    val_scene = make_split(
        args.seed + 2000, args.val_size, args.workers, True, args.cache, SCENE_PLATE_HEIGHT
    )
    val_hard = make_split(args.seed + 1000, args.val_size, args.workers, False, args.cache, HARD_PLATE_HEIGHT)
    summary = {
        "variant": args.variant,
        "onnx": str(out),
        "size_mb": round(out.stat().st_size / 2**20, 3),
        "generate_s": round(result["generate_s"], 1),
        "train_s": round(result["train_s"], 1),
        "steps": result.get("steps", 0),
        "stopped_early": result.get("stopped_early", False),
        "early_stop_history": result.get("early_stop_history", []),
        "recipe": {
            k: str(getattr(args, k))
            for k in (
                "layouts",
                "plate_height",
                "train_size",
                "epochs",
                "batch",
                "lr",
                "target_accuracy",
                "check_every",
                "augment",
                "aux_ctc",
                "dense",
                "seed",
            )
        },
        "device": args.device,
        "threads": args.threads,
        "val_scene_distribution": evaluate(out, val_scene),
        "val_sample_scenes": evaluate_scene_plates(out, args.variant),
        "val_hard_all_layouts": evaluate(out, val_hard),
    }
    print(json.dumps(summary, indent=2))
    if args.metrics:
        args.metrics.parent.mkdir(parents=True, exist_ok=True)
        args.metrics.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
