"""Compare training recipes at equal wall time on CPU, scored by `stst evaluate` on held-out photos.

Each recipe first runs a few iterations to measure its seconds per iteration,
then trains for as many iterations as fit in --minutes (the cosine schedules
need the count up front), and is scored on ../shared/data/photos, which is
never trained on. Prints a Markdown table for models/README.md.

    python scripts/compare_recipes.py --minutes 8 --style starry_night
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from stst.training.evaluate import evaluate, mean_score
from stst.training.options import RunSettings, TrainOptions
from stst.training.train import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

RECIPES = {
    # Johnson et al. / pytorch/examples: 256 px crops, batch 4, Adam 1e-3, no global skip.
    "plain": dict(image_size=256, batch_size=4, lr=1e-3),
    # Global skip (starts as the identity), 128 px crops, cosine decay from 2e-3.
    "residual-128-cosine": dict(image_size=128, batch_size=4, lr=2e-3, lr_schedule="cosine", residual=True),
    # The same without the global skip: more iterations than plain, starting from noise.
    "plain-128-cosine": dict(image_size=128, batch_size=4, lr=2e-3, lr_schedule="cosine"),
}


def seconds_per_iteration(options: TrainOptions, out: Path, probe: int = 5) -> float:
    """Time `probe` iterations after one warm-up iteration."""
    log = out.with_suffix(".probe.jsonl")
    train(replace(options, iterations=probe + 1), RunSettings(output=out, log=log, progress=False, checkpoint_every=0),
          log=lambda m: None)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return (rows[-1]["seconds"] - rows[0]["seconds"]) / probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--size", type=int, default=512, help="evaluation size (long side)")
    parser.add_argument("--work", type=Path, default=Path("recipe-runs"))
    args = parser.parse_args()
    args.work.mkdir(exist_ok=True)
    rows = []
    for name in args.recipes:
        options = TrainOptions(style=str(DATA / "styles" / f"{args.style}.jpg"), dataset=str(DATA / "train"),
                               **RECIPES[name])
        out = args.work / f"{args.style}-{name}.pth"
        per_it = seconds_per_iteration(options, out)
        iterations = max(1, int(args.minutes * 60 / per_it))
        start = time.perf_counter()
        train(replace(options, iterations=iterations), RunSettings(output=out, progress=False, checkpoint_every=0),
              log=lambda m: None)
        minutes = (time.perf_counter() - start) / 60
        mean = mean_score(evaluate(out, [DATA / "photos"], size=args.size))
        rows.append((name, iterations, minutes, mean))
        print(f"{name}: {iterations} it, {minutes:.1f} min, {json.dumps(mean)}", flush=True)
    print("\n| recipe | iterations | minutes | content | style | tv | total |\n|---|---|---|---|---|---|---|")
    for name, iterations, minutes, m in rows:
        print(f"| {name} | {iterations} | {minutes:.1f} | {m['content']:.4g} | {m['style']:.4g} | {m['tv']:.4g} | {m['total']:.4g} |")


if __name__ == "__main__":
    main()
