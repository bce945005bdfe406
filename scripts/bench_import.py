"""Time `import stst.cli` (what `stst --help` pays before it prints) and `import stst`.

Each module is imported in a fresh interpreter with `python -X importtime`, which reports the
cumulative microseconds of every import; the figure is that of the module itself. Runs alternate
between the modules and the median of --repeats is printed. --path points at another checkout
(e.g. an older commit from `git worktree add`) to compare in the same run.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys


def import_seconds(module: str, path: str | None) -> float:
    """Cumulative import time of `module` in a fresh interpreter, in seconds."""
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.path.abspath(path)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, env=env, check=True)
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|\s*" + re.escape(module) + r"$")
    for line in done.stderr.splitlines():
        found = pattern.match(line)
        if found:
            return int(found.group(1)) / 1e6
    raise RuntimeError(f"no importtime line for {module}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--path", action="append", default=[],
                        help="another checkout to time as well (repeatable); the installed stst by default")
    parser.add_argument("--modules", nargs="+", default=["stst.cli", "stst"])
    args = parser.parse_args()
    trees = args.path or [None]
    times: dict[tuple, list[float]] = {}
    for _ in range(args.repeats):
        for tree in trees:
            for module in args.modules:
                times.setdefault((tree, module), []).append(import_seconds(module, tree))
    print(f"{'checkout':<30} {'module':<10} median s   (runs: {args.repeats})")
    for (tree, module), runs in times.items():
        print(f"{tree or 'installed':<30} {module:<10} {statistics.median(runs):.4f}   "
              + " ".join(f"{r:.4f}" for r in runs))


if __name__ == "__main__":
    main()
