"""Generator forward time per face: MagicMask tiny / base / paper against a SimSwap-architecture
generator, side by side in one run, at 224x224 and batch 1, 8 and 32 (CPU, inference_mode).

The reference is SimSwap's ``Generator_Adain_Upsample`` (fs_networks_fix.py) rewritten here with
random weights: 7x7 stem, three stride-2 convs to a 512-channel 28x28 bottleneck, nine AdaIN
residual blocks conditioned on a 512-d identity, three upsample+conv stages and a 7x7 output conv
(about 55 M parameters). Each (model, batch) runs in its own process so its peak RSS is its own.

    python bench/generator_speed.py [--batches 1 8 32] [--threads 2] [--min-time 3]

Wall time is what a user sees on an otherwise idle machine; on a shared one it is inflated by
the other processes, so the CPU time of the process (all threads) is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from torch import nn

MODELS = ("simswap", "paper", "base", "tiny")


class ApplyStyle(nn.Module):
    """SimSwap's AdaIN: a linear map of the identity to a per-channel scale and shift."""

    def __init__(self, latent: int, channels: int):
        super().__init__()
        self.linear = nn.Linear(latent, channels * 2)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        style = self.linear(latent)[:, :, None, None]  # [B, 2C, 1, 1]
        scale, shift = style.chunk(2, dim=1)
        return x * (scale + 1) + shift


class AdainBlock(nn.Module):
    """SimSwap's residual block. Its instance norms are written as GroupNorm(C, C), the same maths
    and the fast CPU path MagicMask uses too, so neither side pays torch's slow InstanceNorm2d."""

    def __init__(self, ch: int, latent: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.GroupNorm(ch, ch, affine=False),
        )
        self.style1 = ApplyStyle(latent, ch)
        self.conv2 = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.GroupNorm(ch, ch, affine=False),
        )
        self.style2 = ApplyStyle(latent, ch)

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.style1(self.conv1(x), latent))
        return x + self.style2(self.conv2(y), latent)


class SimSwapGenerator(nn.Module):
    """The fixed reference: SimSwap's 224 generator (512-d identity, 9 AdaIN blocks)."""

    def __init__(self, latent: int = 512, blocks: int = 9):
        super().__init__()

        def down(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU())

        def up(i, o):
            return nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear"),
                nn.Conv2d(i, o, 3, 1, 1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
            )

        self.first = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, 64, 7), nn.BatchNorm2d(64), nn.ReLU()
        )
        self.down = nn.Sequential(down(64, 128), down(128, 256), down(256, 512))
        self.blocks = nn.ModuleList(AdainBlock(512, latent) for _ in range(blocks))
        self.up = nn.Sequential(up(512, 256), up(256, 128), up(128, 64))
        self.last = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, 3, 7))

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        z = self.down(self.first(x))  # [B, 512, 28, 28]
        for block in self.blocks:
            z = block(z, latent)
        return self.last(self.up(z))


def build(name: str):
    """(model, inputs) for one benchmark entry."""
    from magicmask.model import create_generator
    from magicmask.model.generator import example_inputs

    if name == "simswap":
        return SimSwapGenerator().eval(), lambda b: (
            torch.rand(b, 3, 224, 224),
            torch.randn(b, 512),
        )
    gen = create_generator(name).eval()
    return gen, lambda b: example_inputs(gen.cfg, b)


def measure(name: str, batch: int, threads: int, min_time: float, channels_last: bool) -> dict:
    """Time one (model, batch) in this process: warm-up, then repeat until ``min_time`` passes."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, make = build(name)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    inputs = tuple(t.contiguous(memory_format=fmt) if t.dim() == 4 else t for t in make(batch))
    params = sum(p.numel() for p in model.parameters())
    times, cpu_times = [], []
    with torch.inference_mode():
        model(*inputs)  # warm-up: oneDNN picks its kernels on the first call
        start = time.perf_counter()
        while time.perf_counter() - start < min_time or len(times) < 2:
            t0, c0 = time.perf_counter(), time.process_time()
            model(*inputs)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    best = min(times)  # the machine is shared: the fastest repeat is the least disturbed one
    median = sorted(times)[len(times) // 2]
    return {
        "model": name,
        "batch": batch,
        "params_m": params / 1e6,
        "ms_per_face": best / batch * 1e3,
        "ms_per_face_median": median / batch * 1e3,
        "faces_per_s": batch / best,
        # CPU seconds of all threads: what the forward costs, whatever else shares the machine
        "cpu_ms_per_face": min(cpu_times) / batch * 1e3,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "repeats": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--min-time", type=float, default=3.0, help="seconds of timed repeats per entry"
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last instead of NCHW"
    )
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = measure(
            args.one[0],
            int(args.one[1]),
            args.threads,
            args.min_time,
            args.channels_last,
        )
        print(json.dumps(result))
        return

    print(
        f"torch {torch.__version__}, {args.threads} threads, 224x224, inference_mode, "
        f"{'channels_last' if args.channels_last else 'NCHW'}; best of repeats over >= {args.min_time:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print("wall = elapsed time; CPU = process CPU time of all threads (robust to a shared machine)")
    rows = {}
    for batch in args.batches:
        for name in args.models:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                name,
                str(batch),
                "--threads",
                str(args.threads),
                "--min-time",
                str(args.min_time),
            ] + (["--channels-last"] if args.channels_last else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[name, batch] = json.loads(out.strip().splitlines()[-1])
            r = rows[name, batch]
            ref = rows.get(("simswap", batch))
            ratio = f"{r['ms_per_face'] / ref['ms_per_face']:.3f}x" if ref else "-"
            cpu_ratio = f"{r['cpu_ms_per_face'] / ref['cpu_ms_per_face']:.3f}x" if ref else "-"
            print(
                f"{name:>8} batch {batch:>2}: wall {r['ms_per_face']:9.2f} ms/face ({ratio:>7} SimSwap) "
                f"{r['faces_per_s']:7.1f} faces/s | CPU {r['cpu_ms_per_face']:9.2f} ms/face ({cpu_ratio:>7} SimSwap) | "
                f"{r['params_m']:5.1f} M params, peak RSS {r['peak_rss_mb']:5.0f} MB",
                flush=True,
            )
    print("\ngoals: paper <= 1.2x SimSwap, base <= 0.5x SimSwap, tiny >= 100 faces/s at batch 8")
    for batch in args.batches:
        if ("simswap", batch) not in rows:
            continue
        parts = []
        for key, label in (("ms_per_face", "wall"), ("cpu_ms_per_face", "CPU")):
            ref = rows["simswap", batch][key]
            ratios = [
                f"{m} {rows[m, batch][key] / ref:.3f}x"
                for m in ("paper", "base")
                if (m, batch) in rows
            ]
            parts.append(f"{label}: " + ", ".join(ratios))
        if ("tiny", batch) in rows:
            tiny = rows["tiny", batch]
            parts.append(
                f"tiny {tiny['faces_per_s']:.0f} faces/s wall, "
                f"{1e3 * args.threads / tiny['cpu_ms_per_face']:.0f} faces/s if the {args.threads} threads had their cores"
            )
        print(f"batch {batch:>2}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
