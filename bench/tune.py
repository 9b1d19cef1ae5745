"""How long `mmvideo tune` takes: data preparation, then training steps per second.

Prepares the shot's faces once (the swap's analysis of the clip, then `train.preprocess`'s crops),
then trains a few steps per setting from the embedded checkpoint, so a user can turn
`--minutes` into steps (or the reverse) for their machine:

    .venv/bin/python bench/tune.py                                 # turn_03 <- biden_01, defaults
    .venv/bin/python bench/tune.py --clip talking_head_obama_address_01.mp4 --steps 10 \\
        --variant "pairs=2" --variant "lambda_perceptual=0,lambda_feature_match=0"

Each variant overrides fields of `mmvideo.tune.TuneSettings`. Steps/s counts the whole step
(data, generator, discriminators, EMA) and the one state checkpoint at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("MMVIDEO_TEST_DATA", REPO.parent / "shared" / "data"))


def _variant(text: str, base):
    fields = {f.name: f.type for f in dataclasses.fields(base)}
    values = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        key = "batch_size" if key == "pairs" else key
        if key not in fields:
            raise SystemExit(f"unknown setting {key!r} (one of {', '.join(fields)})")
        current = getattr(base, key)
        if isinstance(current, bool):
            values[key] = value.lower() in ("1", "true", "on")
        elif isinstance(current, tuple):  # freeze=visual+geometric
            values[key] = tuple(filter(None, value.split("+")))
        else:
            values[key] = type(current)(value)
    return dataclasses.replace(base, **values)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--clip", default="talking_head_turn_03.mp4", help="Target clip in the data folder."
    )
    p.add_argument("--source", default="id_biden_01.jpg", help="Source photo in the data folder.")
    p.add_argument(
        "--max-frames", type=int, default=200, help="Target faces prepared (tune's --max-frames)."
    )
    p.add_argument("--steps", type=int, default=5, help="Training steps timed per variant.")
    p.add_argument("--threads", type=int, default=1, help="torch threads (tune's --train-threads).")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="key=value,... over the defaults; repeatable.",
    )
    args = p.parse_args(argv)

    from magicmask.checkpoint import default_checkpoint_path
    from mmvideo.config import load_config
    from mmvideo.tune import (
        TuneSettings,
        check_base,
        prepare_faces,
        train,
        train_config,
    )

    base_path = default_checkpoint_path()
    base = check_base(base_path)
    defaults = dataclasses.replace(
        TuneSettings(), max_frames=args.max_frames, checkpoint_every=10**9
    )
    variants = [("defaults", defaults)] + [(v, _variant(v, defaults)) for v in args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "faces"
        t0 = time.perf_counter()
        faces = prepare_faces(
            shared,
            (str(DATA / args.clip),),
            [DATA / args.source],
            None,
            load_config("balanced"),
            defaults,
            str(base_path),
        )
        prep = time.perf_counter() - t0
        print(f"data preparation: {prep:.1f} s for {faces.target_faces} target + {faces.source_faces} source faces "
              f"({prep / max(1, faces.target_faces):.2f} s per face, {args.clip})", flush=True)  # fmt: skip
        rows = []
        for name, settings in variants:
            run = Path(tmp) / f"run{len(rows)}"
            run.mkdir()
            (run / "data").symlink_to(shared / "data", target_is_directory=True)
            tcfg = train_config(settings, base.config, base_path, args.steps)
            t0 = time.perf_counter()
            result, _ = train(
                run, tcfg, base_path, False, args.steps, None, settings, threads=args.threads
            )
            setup = time.perf_counter() - t0 - result.seconds
            rows.append((name, settings.batch_size, args.steps / result.seconds, setup))
            print(f"{name}: {args.steps / result.seconds:.3f} steps/s", file=sys.stderr, flush=True)
    print(f"\n{platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}), {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.threads} torch thread(s), {args.steps} steps each")  # fmt: skip
    print("| variant | pairs/step | steps/s | s/step | steps in 20 min | model setup s |")
    print("|---|---|---|---|---|---|")
    for name, pairs, rate, setup in rows:
        print(
            f"| {name} | {pairs} | {rate:.3f} | {1 / rate:.1f} | {rate * 1200:.0f} | {setup:.1f} |"
        )


if __name__ == "__main__":
    main()
