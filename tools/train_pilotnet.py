"""Train the sample PilotNet on the simulated circuits and export ``models/pilotnet.onnx``.

Data (seeded, rendered by ``trt_perception.sim``): the pure-pursuit expert labels every view with its
(v, w). Two kinds of views teach recovery, not only lane keeping:

* noise-injected laps (DART-style): the car executes the expert command plus Ornstein-Uhlenbeck
  noise on w and random kicks, the label is always the clean expert command at the visited pose;
* perturbed poses: random points along the track with a lateral offset (up to +-3 m) and a heading
  error (up to +-0.5 rad), labelled by the expert.

Both circuits (``simple``, ``montreal``) in both driving directions. Then one DAgger round: the
trained net drives (with a little noise), the expert labels the states it visits, and training
continues on the union. Images are kept as the network sees them: rows 240:480 of the 640x480 frame,
resized to 200x66, RGB uint8.

Run (CPU, 2 threads, ~10 min):  .venv/bin/python -m tools.train_pilotnet --out models/pilotnet.onnx
Training-only dependency: torch (requirements-train.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from trt_perception.sim.circuits import circuit_names, get_circuit, reference_csv_path, write_reference_csv
from trt_perception.sim.expert import ExpertConfig, PurePursuitExpert
from trt_perception.sim.render import CircuitRenderer
from trt_perception.sim.world import Simulation
from trt_perception.stages.pilot import INPUT_HEIGHT, INPUT_WIDTH, crop_rows, normalise

V_RANGE = (2.0, 12.0)
W_RANGE = (-2.0, 2.0)
CROP = (240, 480)
DT = 0.1  # seconds between recorded views in rollouts


def to_input(bgr: np.ndarray) -> np.ndarray:
    """The network's view as RGB uint8 [66, 200, 3] (same crop and resize as the Pilot stage)."""
    small = cv2.resize(crop_rows(bgr, *CROP), (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_LINEAR)
    return small[:, :, ::-1].copy()


def label(v: float, w: float) -> tuple[float, float]:
    return float(normalise(v, *V_RANGE)), float(normalise(w, *W_RANGE))


class Collector:
    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.labels: list[tuple[float, float]] = []

    def add(self, bgr: np.ndarray, v: float, w: float) -> None:
        self.images.append(to_input(bgr))
        self.labels.append(label(v, w))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.stack(self.images), np.asarray(self.labels, np.float32)


def perturbed_poses(
    sim: Simulation,
    expert: PurePursuitExpert,
    reverse: bool,
    n: int,
    rng: np.random.Generator,
    out: Collector,
) -> None:
    c = sim.circuit
    heading = c.heading()
    for _ in range(n):
        i = int(rng.integers(len(c.centerline)))
        yaw = heading[i] + (math.pi if reverse else 0.0)
        lat = float(np.clip(rng.normal(0, 1.3), -3.0, 3.0))
        dyaw = float(np.clip(rng.normal(0, 0.22), -0.5, 0.5))
        x = c.centerline[i, 0] - lat * math.sin(heading[i])
        y = c.centerline[i, 1] + lat * math.cos(heading[i])
        v, w = expert.command(x, y, yaw + dyaw)
        out.add(sim.renderer.render(x, y, yaw + dyaw), v, w)


def rollout(
    sim: Simulation,
    expert: PurePursuitExpert,
    reverse: bool,
    seconds: float,
    rng: np.random.Generator,
    out: Collector,
    policy=None,  # type: ignore[no-untyped-def]
    noise: float = 0.35,
) -> None:
    """Drive with expert (or ``policy``) + OU noise, label each view with the clean expert command."""
    sim.reset(reverse=reverse)
    ou = 0.0
    while sim.time < seconds:
        s = sim.state
        img = sim.observe()
        v, w = expert.command(s.x, s.y, s.yaw)
        out.add(img, v, w)
        if policy is not None:
            v, w = policy(img)
        ou += -0.5 * ou * DT + noise * math.sqrt(DT) * rng.normal()
        kick = rng.normal(0, 1.2) if rng.random() < 0.01 else 0.0
        sim.step(v, w + ou + kick, DT, substeps=2)
        if sim.off_track():  # recovered poses are in the data; restart from a random point
            sim.reset(reverse=reverse)
            idx = int(rng.integers(len(sim.circuit.centerline)))
            h = sim.circuit.heading()[idx] + (math.pi if reverse else 0.0)
            sim.vehicle.reset(*sim.circuit.centerline[idx], h)


def collect(seed: int, poses_per_run: int, rollout_s: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = Collector()
    for name in circuit_names():
        circuit = get_circuit(name)
        sim = Simulation(circuit, renderer=CircuitRenderer(circuit))
        for reverse in (False, True):
            expert = PurePursuitExpert(circuit, ExpertConfig(w_max=W_RANGE[1]), reverse=reverse)
            rollout(sim, expert, reverse, rollout_s, rng, data)
            perturbed_poses(sim, expert, reverse, poses_per_run, rng, data)
    return data.arrays()


def build_model():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class PilotNet(nn.Module):
        """NVIDIA PilotNet (5 conv + FC 100-50-10) as in BehaviorMetrics, without the 1164-wide FC.

        Dropping that layer (1.34 M of its 1.6 M weights) keeps the ONNX file near 1 MB.
        """

        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.BatchNorm2d(3)
            self.features = nn.Sequential(
                nn.Conv2d(3, 24, 5, 2), nn.ReLU(),
                nn.Conv2d(24, 36, 5, 2), nn.ReLU(),
                nn.Conv2d(36, 48, 5, 2), nn.ReLU(),
                nn.Conv2d(48, 64, 3), nn.ReLU(),
                nn.Conv2d(64, 64, 3), nn.ReLU(),
            )  # fmt: skip
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(64 * 1 * 18, 100), nn.ReLU(), nn.Dropout(0.1),
                nn.Linear(100, 50), nn.ReLU(),
                nn.Linear(50, 10), nn.ReLU(),
                nn.Linear(10, 2),
            )  # fmt: skip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(self.norm(x)))

    return PilotNet()


def train(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    device: str = "cpu",
):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(seed)
    model.to(device)
    x_all = torch.from_numpy(images)  # uint8 NHWC, converted per batch to save memory
    y_all = torch.from_numpy(labels)
    n = len(x_all)
    batch = 64
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch))
    weight = torch.tensor([1.0, 3.0], device=device)  # steering errors matter more than speed errors
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for k in range(0, n, batch):
            idx = perm[k : k + batch]
            x = x_all[idx].to(device).permute(0, 3, 1, 2).float().div_(255.0)
            # brightness jitter: robustness beyond the renderer's fixed lighting
            gain = (0.8 + 0.4 * torch.rand(len(idx), 1, 1, 1, generator=gen)).to(device)
            x = (x * gain).clamp_(0, 1)
            loss = (((model(x) - y_all[idx].to(device)) ** 2) * weight).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: weighted mse {total / n:.5f}", flush=True)
    model.eval()
    return model.cpu()


def evaluate_mse(model, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        preds = torch.cat(
            [
                model(torch.from_numpy(images[k : k + 256]).permute(0, 3, 1, 2).float() / 255.0)
                for k in range(0, len(images), 256)
            ]
        ).numpy()
    err = (preds - labels) ** 2
    return {"mse": float(err.mean()), "mse_v": float(err[:, 0].mean()), "mse_w": float(err[:, 1].mean())}


def export(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, INPUT_HEIGHT, INPUT_WIDTH)
    torch.onnx.export(
        model, dummy, str(path), input_names=["image"], output_names=["cmd"], opset_version=17,
        dynamic_axes={"image": {0: "N"}, "cmd": {0: "N"}}, dynamo=False,
    )  # fmt: skip
    add_metadata(path)


def add_metadata(path: Path) -> None:
    """Ranges and crop in the ONNX metadata, so a model file documents its own output scaling."""
    try:
        import onnx
    except ImportError:  # e.g. a training box without onnx: rerun with --metadata-only where it exists
        print("onnx not installed: metadata not written")
        return
    m = onnx.load(str(path))
    del m.metadata_props[:]
    meta = {
        "v_min": V_RANGE[0], "v_max": V_RANGE[1], "w_min": W_RANGE[0], "w_max": W_RANGE[1],
        "crop_top": CROP[0], "crop_bottom": CROP[1], "input": "RGB/255 NCHW 66x200",
    }  # fmt: skip
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=str(v))
    onnx.save(m, str(path))


def policy_from(model):  # type: ignore[no-untyped-def]
    import torch

    def act(bgr: np.ndarray) -> tuple[float, float]:
        x = torch.from_numpy(to_input(bgr)).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            raw = model(x)[0].clamp(-1, 1).numpy()
        v = V_RANGE[0] + (raw[0] + 1) / 2 * (V_RANGE[1] - V_RANGE[0])
        w = W_RANGE[0] + (raw[1] + 1) / 2 * (W_RANGE[1] - W_RANGE[0])
        return float(v), float(w)

    return act


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/pilotnet.onnx"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--dagger-epochs", type=int, default=3)
    ap.add_argument("--poses", type=int, default=1500, help="perturbed poses per circuit and direction")
    ap.add_argument(
        "--rollout-s", type=float, default=120.0, help="noise-injected driving per circuit and direction"
    )
    ap.add_argument("--dagger-s", type=float, default=80.0, help="DAgger driving per circuit and direction")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--device", default="cpu", help="torch device: cpu (default, reproduces the model) or cuda"
    )
    ap.add_argument("--write-references", action="store_true", help="also write the reference lap CSVs")
    ap.add_argument("--metadata-only", action="store_true", help="only (re)write the ONNX metadata of --out")
    ap.add_argument("--report", type=Path, default=None, help="write training numbers as JSON here")
    args = ap.parse_args()

    if args.metadata_only:
        add_metadata(args.out)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.write_references:
        for name in circuit_names():
            write_reference_csv(reference_csv_path(name), get_circuit(name).reference())
    t0 = time.perf_counter()
    images, labels = collect(args.seed, args.poses, args.rollout_s)
    t_data = time.perf_counter() - t0
    print(f"dataset: {len(images)} views in {t_data:.0f} s", flush=True)
    val_images, val_labels = collect(args.seed + 1000, 150, 20.0)

    torch.manual_seed(args.seed)  # the initial weights too: torch's default seed is not fixed per process
    model = build_model()
    t1 = time.perf_counter()
    train(model, images, labels, args.epochs, args.seed, device=args.device)
    if args.dagger_epochs > 0:
        rng = np.random.default_rng(args.seed + 1)
        extra = Collector()
        policy = policy_from(model)
        for name in circuit_names():
            circuit = get_circuit(name)
            sim = Simulation(circuit)
            for reverse in (False, True):
                expert = PurePursuitExpert(circuit, ExpertConfig(w_max=W_RANGE[1]), reverse=reverse)
                rollout(sim, expert, reverse, args.dagger_s, rng, extra, policy=policy, noise=0.15)
        x2, y2 = extra.arrays()
        print(f"DAgger: {len(x2)} views visited by the net, labelled by the expert", flush=True)
        images, labels = np.concatenate([images, x2]), np.concatenate([labels, y2])
        train(model, images, labels, args.dagger_epochs, args.seed + 2, lr=5e-4, device=args.device)
    t_train = time.perf_counter() - t1
    metrics = evaluate_mse(model, val_images, val_labels)
    export(model, args.out)
    report = {
        "samples": len(images),
        "val_samples": len(val_images),
        "data_s": round(t_data, 1),
        "train_s": round(t_train, 1),
        "total_s": round(time.perf_counter() - t0, 1),
        "threads": args.threads,
        "device": args.device,
        **{f"val_{k}": round(v, 5) for k, v in metrics.items()},
        "onnx_bytes": args.out.stat().st_size,
    }
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
