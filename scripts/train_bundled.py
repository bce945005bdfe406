"""Retrain the bundled style models in models/ with `stst train`'s cpu-fast preset, or distill their faster tiers.

Each style trains on ../shared/data/train into WORK/NAME.pth (resumable: run
the script again after an interruption), is then stored in models/NAME.pth as
float16 without optimiser state (full metadata kept), and is scored with
`stst evaluate` on ../shared/data/photos at 512 px. With --steady W, the bundled
models/NAME.pth is fine-tuned with `--temporal-weight W` (`--init`, lr 1e-3,
cosine) into WORK/NAME-steady.pth and replaces it. With --tier light or
realtime, the bundled models/NAME.pth is distilled (`stst distill --tier`, width
16) into WORK/NAME-TIER.pth and stored as models/NAME-TIER.pth the same way.

    python scripts/train_bundled.py --iterations 1700
    python scripts/train_bundled.py --tier light --iterations 3000 --styles starry_night
    python scripts/train_bundled.py --tier realtime --iterations 3000
    python scripts/train_bundled.py --steady 2e7 --iterations 500   # fine-tune for video (--temporal-weight)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stst.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from stst.training.distill import DistillOptions, distill
from stst.training.evaluate import evaluate, mean_score
from stst.training.options import RunSettings, make_options
from stst.training.train import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# Public-domain paintings from ../shared/data/styles (painters dead > 70 years, works before 1929).
STYLES = {
    "starry_night": "Vincent van Gogh, The Starry Night (1889)",
    "great_wave": "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
    "the_scream": "Edvard Munch, The Scream (1893)",
    "udnie": "Francis Picabia, Udnie (1913)",
    "composition_vii": "Wassily Kandinsky, Composition VII (1913)",
    "woman_with_a_hat": "Henri Matisse, Woman with a Hat (1905)",
    "shipwreck": "J. M. W. Turner, The Shipwreck of the Minotaur (c. 1810)",
}


def train_style(name: str, iterations: int, work: Path, suffix: str = "", **given) -> Path:
    """Train (or resume) one style into ``work``/NAME{suffix}.pth with options ``given`` over the cpu-fast
    preset; returns the full checkpoint's path."""
    out = work / f"{name}{suffix}.pth"
    run = RunSettings(output=out, checkpoint_every=50)
    if out.exists():
        done = load_checkpoint(out).metadata["iterations"]
        if done < iterations:
            train(None, run, resume=out, iterations=iterations)
    else:
        options = make_options(str(DATA / "styles" / f"{name}.jpg"), str(DATA / "train"), "cpu-fast",
                               iterations=iterations, **given)
        train(options, run)
    return out


def steady_style(name: str, iterations: int, weight: float, work: Path) -> Path:
    """Fine-tune the bundled model of ``name`` with the temporal term (less video flicker) into ``work``."""
    return train_style(name, iterations, work, "-steady", lr=1e-3, temporal_weight=weight,
                       init=str(ROOT / "models" / f"{name}.pth"))


def distill_style(name: str, iterations: int, work: Path, tier: str) -> Path:
    """Distill the bundled model of ``name`` into its ``tier`` (width 16) in ``work`` (kept if already there)."""
    out = work / f"{name}-{tier}.pth"
    if not out.exists():
        options = DistillOptions(iterations=iterations, design="realtime" if tier == "realtime" else "johnson")
        distill(ROOT / "models" / f"{name}.pth", DATA / "train", out, options, workers=1)
    return out


def bundle(name: str, full: Path, suffix: str = "") -> Path:
    """Store a slim float16 copy with full metadata in models/ as NAME{suffix}.pth."""
    ckpt = load_checkpoint(full)
    metadata = dict(ckpt.metadata)
    metadata["style"] = {**metadata["style"], "title": STYLES[name], "licence": "public domain"}
    target = ROOT / "models" / f"{name}{suffix}.pth"
    save_checkpoint(target, ckpt.build(), metadata, style_image=ckpt.style_image, half=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--styles", nargs="*", default=list(STYLES))  # the last three: issue 10, in progress
    parser.add_argument("--work", type=Path, default=ROOT / "recipe-runs")
    parser.add_argument("--tier", choices=["light", "realtime"], help="distill this tier of the bundled models instead")
    parser.add_argument("--steady", type=float, metavar="WEIGHT",
                        help="fine-tune the bundled models with this temporal weight instead (steadier video)")
    args = parser.parse_args()
    args.work.mkdir(exist_ok=True)
    rows = []
    for name in args.styles:
        start = time.perf_counter()
        if args.tier:
            target = bundle(name, distill_style(name, args.iterations, args.work, args.tier), f"-{args.tier}")
        elif args.steady:
            target = bundle(name, steady_style(name, args.iterations, args.steady, args.work))
        else:
            target = bundle(name, train_style(name, args.iterations, args.work))
        _, ckpt = load_model(target)
        mean = mean_score(evaluate(target, [DATA / "photos"], size=512))
        meta = ckpt.metadata
        origin = meta.get("distilled_from")  # a faster tier: its own iterations and time, not the teacher's
        its, seconds = (origin["iterations"], origin["seconds"]) if origin else (meta["iterations"], meta["train_seconds"])
        rows.append((target.stem, its, seconds / 60, target.stat().st_size / 1e6, mean))
        print(f"{target.stem}: done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    print("\n| model | iterations | training minutes | file MB | content | style | tv | total |")
    print("|---|---|---|---|---|---|---|---|")
    for name, its, minutes, mb, m in rows:
        print(f"| {name} | {its} | {minutes:.1f} | {mb:.1f} | {m['content']:.4g} | {m['style']:.4g} | {m['tv']:.4g} | {m['total']:.4g} |")


if __name__ == "__main__":
    main()
