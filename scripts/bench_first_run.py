"""Benchmark a first run: whole `stst stylize` commands in a fresh $STST_HOME each (no engine measured, no graph
exported), as a new user meets them, and the same commands warm.

    python scripts/bench_first_run.py                       # this checkout, 3 repeats, rows alternated
    python scripts/bench_first_run.py --path ../other-checkout --repeats 2

Rows: `stst stylize --example` (one 768x512 photo, the default model and engine choice), the same pinned to
ONNX Runtime fp32, and the 24 Kodak photos of ../shared/data/photos by default and with `--precision fp32`.
Each row runs --runs times in one home: the first in a fresh one, the later ones as a user who comes back
(the second run of a folder is where the default times its engines now). --path runs another checkout's code
(its `stst` package first on PYTHONPATH) in the same rounds, for a before/after.
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

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
ROWS = {  # the row's name (for --rows) and the command's arguments
    "example": ["--example"],
    "example-onnxruntime": ["--example", "--backend", "onnxruntime", "--precision", "fp32"],
    "photos": [str(PHOTOS)],
    "photos-fp32": [str(PHOTOS), "--precision", "fp32"],
}


def run(code: Path, args: list[str], home: Path, out: Path) -> float:
    env = {**os.environ, "STST_HOME": str(home), "PYTHONPATH": str(code)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stst", "stylize", *args, "-o", f"{out}/", "--overwrite"],
                          cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-400:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, action="append", default=[], help="another checkout to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per home (the first in a fresh one)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    args = parser.parse_args()
    codes = [ROOT, *args.path]
    times: dict[tuple[str, Path], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for row in args.rows:
                for code in codes:
                    place = Path(scratch) / f"{repeat}-{len(times)}-{row.replace(' ', '_')}-{code.name}"
                    (place / "out").mkdir(parents=True)
                    runs = [run(code, ROWS[row], place / "home", place / "out") for _ in range(args.runs)]
                    times.setdefault((row, code), []).append(runs)
                    print(f"  {row} [{code.name}]: " + ", ".join(f"{t:.1f}" for t in runs) + " s", flush=True)
    print(f"\nWhole commands, median seconds of {args.repeats} (run 1 in a fresh home, then again), rows alternated")
    print("| command | checkout | " + " | ".join(f"run {i + 1}" for i in range(args.runs)) + " |")
    print("|---|---|" + "---|" * args.runs)
    for (row, code), seen in times.items():
        medians = [statistics.median(runs[i] for runs in seen) for i in range(args.runs)]
        print(f"| `stst stylize {' '.join(ROWS[row]).replace(str(PHOTOS), '24 photos')}` | {code.name} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")


if __name__ == "__main__":
    main()
