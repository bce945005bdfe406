"""What stst keeps in ``$STST_HOME`` about engines: the choices, the express lane's routes and the exported graphs.

One fingerprint of the machine (:func:`fingerprint`) opens the key of every recorded choice, so a new CPU, a
library upgrade or another thread count misses all of them alike; entries this CPU left with other software are
pruned when a record is written, and graphs exported by another torch or quantized by another ONNX Runtime
when a graph is made. Graphs are named by their weights (:func:`weights_digest`), not by the machine: the same
graph runs anywhere. A cache that cannot be written costs only time, never the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..base.errors import StstError, os_problem
from ..base.fileio import atomic_path
from ..base.home import stst_home
from ..base.machine import cpu_cores, cpu_name, package_version
from ..model import GRAPH_FORM

if TYPE_CHECKING:
    from ..model.network import TransformerNet

CHOICES_FILE = "precision.json"  # the measured engine choices (stst.infer.choice)
ROUTES_FILE = "express.json"  # the express lane's routes (stst.infer.express)
PLANS_FILE = "plans.json"  # what the express lane needs to time the graph engines itself (stst.infer.express)
GRAPHS_FOLDER = "onnx"


def threads() -> str:
    """The threads the engines run on, as the environment sets them (torch and ONNX Runtime follow it)."""
    return os.environ.get("OMP_NUM_THREADS") or str(cpu_cores())


def software() -> str:
    """The libraries and the stst version every measurement and graph depends on."""
    return (f"torch {package_version('torch')}, onnxruntime {package_version('onnxruntime')}, "
            f"openvino {package_version('openvino')}, stst {__version__}, graph form {GRAPH_FORM}")


def fingerprint() -> str:
    """The machine as every cached choice sees it: CPU, software and threads."""
    return f"{cpu_name()} | {software()} | {threads()} threads"


def read_record(name: str) -> dict:
    """The JSON object ``name`` in the cache folder; {} when it is missing or unreadable (it is made again)."""
    try:
        known = json.loads((stst_home() / name).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def write_record(name: str, known: dict) -> None:
    """Write ``known`` as the JSON object ``name`` atomically, without this CPU's entries of other software."""
    cpu, current = f"{cpu_name()} | ", f"{cpu_name()} | {software()} | "
    kept = {key: value for key, value in known.items() if not key.startswith(cpu) or key.startswith(current)}
    try:
        with atomic_path(stst_home() / name) as tmp:
            tmp.write_text(json.dumps(kept, indent=1))
    except OSError:
        pass


def here(name: str) -> dict[str, object]:
    """The entries of record ``name`` made on this machine, by the rest of their key."""
    prefix = fingerprint() + " | "
    return {key[len(prefix):]: value for key, value in read_record(name).items() if key.startswith(prefix)}


def weights_digest(model: TransformerNet) -> str:
    """A short hash of the architecture, weights, border and graph form: the cache name of the model's exported graph.

    The border and the form are part of the graph (a graph cached with another
    would still run, and do other work than this version of stst).
    """
    digest = hashlib.sha256(repr((model.config.to_dict(), model.border, GRAPH_FORM)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def _graph_folders() -> tuple[Path, Path]:
    return stst_home() / GRAPHS_FOLDER, Path(tempfile.gettempdir()) / "stst-onnx"


def _made_by() -> tuple[str, str]:
    """The parts of a graph file's name that say which software made it."""
    return f"-torch{package_version('torch').split('+')[0]}.", f"-ort{package_version('onnxruntime')}."


def _prune_graphs(folder: Path) -> None:
    """Remove the graphs (and verdicts) another torch exported or another ONNX Runtime quantized."""
    torch_part, ort_part = _made_by()
    for path in folder.iterdir():
        name = path.name
        if ("-torch" in name and torch_part not in name) or ("-ort" in name and ort_part not in name):
            try:
                path.unlink()
            except OSError:
                pass


def cached_file(name: str, make: Callable[[Path], None] | None = None) -> Path | None:
    """A file of the graph cache (``$STST_HOME/onnx/``): the one there, else made by ``make(path)`` (atomically),
    or None without ``make``; where ``$STST_HOME`` cannot be written, the system's temporary folder serves."""
    folders = _graph_folders()
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    if make is None:
        return None
    for folder in folders:
        try:
            with atomic_path(folder / name) as tmp:
                make(tmp)
            _prune_graphs(folder)
            return folder / name
        except OSError as exc:
            problem = exc
    raise StstError(f"cannot write {name} to {folders[0]} or {folders[1]} ({os_problem(problem)}); "
                    "use --backend torch or set STST_HOME to a writable folder")


def graph_name(model: TransformerNet, kind: str = "") -> str:
    """The cache name of one of the model's exported graphs (``kind``: "" the model, "stats", "tiles")."""
    return f"{weights_digest(model)}{'-' + kind if kind else ''}{_made_by()[0]}onnx"


def cached_graph(model: TransformerNet) -> Path:
    """The model's ONNX graph in the cache, exported first if it is not there yet."""
    from ..model.export import export_model

    return cached_file(graph_name(model), lambda path: export_model(model, path, "onnx"))


def int8_names(model: TransformerNet) -> tuple[str, str]:
    """The cache names of the model's int8 graph and of the verdict that it is not faithful."""
    stem = f"{weights_digest(model)}-int8{_made_by()[1][:-1]}"
    return f"{stem}.onnx", f"{stem}.unfaithful"
