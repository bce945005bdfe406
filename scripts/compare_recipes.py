"""Compare training recipes at equal wall time (or equal steps) on CPU, scored by `stst evaluate` on held-out photos.

Each recipe first runs a few iterations to measure its seconds per iteration,
then trains for as many iterations as fit in --minutes (the cosine schedules
need the count up front), or for --steps iterations each; it is scored on the
Kodak photos in ../shared/data/photos that it never trained on (the quick
recipes train on the odd-numbered ones, which ship with stst). Prints a
Markdown table for models/README.md and docs/training.md.

    python scripts/compare_recipes.py --minutes 8 --style starry_night
    python scripts/compare_recipes.py --steps 275 --recipes quick-128 quick-256   # gpu-quick's crops, on a CPU
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from stst.training.datasets import resolve_dataset
from stst.training.evaluate import evaluate, mean_score, unseen_photos
from stst.training.options import PRESET_DATASETS, PRESETS, RunSettings, TrainOptions
from stst.training.train import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

RECIPES = {
    # Johnson et al. / pytorch/examples: 256 px crops, batch 4, Adam 1e-3, no global skip.
    "plain": dict(image_size=256, batch_size=4, lr=1e-3),
    # Global skip (starts as the identity), 128 px crops, cosine decay from 2e-3.
    "residual-128-cosine": dict(image_size=128, batch_size=4, lr=2e-3, lr_schedule="cosine", residual=True),
    # The same without the global skip: more iterations than plain, starting from noise.
    "plain-128-cosine": dict(image_size=128, batch_size=4, lr=2e-3, lr_schedule="cosine"),
    # The quick recipe (a fine-tuned shipwreck, palette term and fit, on the shipped photos) by steps, not minutes,
    # at its CPU crops and at gpu-quick's (batch 4 both: a GPU's batch of 8 costs a CPU twice the time).
    "quick-128": {**PRESETS["quick"], "minutes": 0.0},
    "quick-256": {**PRESETS["quick"], "minutes": 0.0, "image_size": 256},
}


def seconds_per_iteration(options: TrainOptions, out: Path, probe: int = 5) -> float:
    """Time `probe` iterations after one warm-up iteration."""
    log = out.with_suffix(".probe.jsonl")
    train(replace(options, iterations=probe + 1), RunSettings(output=out, log=log, progress=False, checkpoint_every=0),
          log=lambda m: None)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return (rows[-1]["seconds"] - rows[0]["seconds"]) / probe


def dataset_for(name: str) -> Path:
    """A recipe's photos: its preset's shipped set for the quick ones, else ../shared/data/train."""
    return resolve_dataset(PRESET_DATASETS["quick"]) if name.startswith("quick") else DATA / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--steps", type=int, help="train each recipe this many iterations instead of --minutes")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--size", type=int, default=512, help="evaluation size (long side)")
    parser.add_argument("--work", type=Path, default=Path("recipe-runs"))
    args = parser.parse_args()
    args.work.mkdir(exist_ok=True)
    rows = []
    for name in args.recipes:
        dataset = dataset_for(name)
        options = TrainOptions(style=str(DATA / "styles" / f"{args.style}.jpg"), dataset=str(dataset),
                               **RECIPES[name])
        out = args.work / f"{args.style}-{name}.pth"
        iterations = args.steps or max(1, int(args.minutes * 60 / seconds_per_iteration(options, out)))
        start = time.perf_counter()
        train(replace(options, iterations=iterations), RunSettings(output=out, progress=False, checkpoint_every=0),
              log=lambda m: None)
        minutes = (time.perf_counter() - start) / 60
        photos = unseen_photos(DATA / "photos", dataset)  # the Kodak photos it never trained on
        mean = mean_score(evaluate(out, photos, size=args.size))
        rows.append((name, iterations, minutes, len(photos), mean, options.style_weight))
        print(f"{name}: {iterations} it, {minutes:.1f} min, {json.dumps(mean)}", flush=True)
    print("\n| recipe | iterations | minutes | held-out photos | content | style | tv | total | style (raw) | LPIPS | "
          "palette |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name, iterations, minutes, photos, m, style_weight in rows:
        print(f"| {name} | {iterations} | {minutes:.1f} | {photos} | {m['content']:.4g} | {m['style']:.4g} | "
              f"{m['tv']:.4g} | {m['total']:.4g} | {m['style'] / style_weight:.3g} | {m['lpips']:.3f} | "
              f"{m['palette']:.2f} |")


if __name__ == "__main__":
    main()
