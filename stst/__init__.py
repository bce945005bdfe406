"""stst: fast neural style transfer (Johnson et al. 2016) with VGG16 perceptual losses.

The public API, for use without the command line::

    from stst import load_model, stylize_image

Names are imported on first use (PEP 562), so ``import stst`` and ``stst --help`` stay free
of torch. The code lives in wings, each importing only the ones below it: ``base`` (files,
images, errors, devices), ``model`` (the network and its files), ``infer`` (the engines),
``video`` and ``training``; the job runner (``stylize``) and the ``cli`` sit on top.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    # models: the network, its file format, the bundled styles
    "ArchConfig": "model.network",
    "TransformerNet": "model.network",
    "Checkpoint": "model.checkpoint",
    "load_checkpoint": "model.checkpoint",
    "load_model": "model.checkpoint",
    "save_checkpoint": "model.checkpoint",
    "bundled_models": "model.bundled",
    "resolve_model": "model.bundled",
    "export_model": "model.export",
    "model_info": "model.info",
    # stylizing photos and clips
    "Stylizer": "infer.engine",
    "open_stylizer": "infer.engine",
    "stylize_image": "infer.engine",
    "stylize_tensor": "infer.engine",
    "Look": "infer.look",
    "read_photo": "base.imageio",
    "write_photo": "base.imageio",
    "stylize_video": "video.video",
    "VideoSettings": "video.settings",
    "ClipReport": "video.video",
    "plan_jobs": "stylize",
    "run_jobs": "stylize",
    "JobSettings": "stylize",
    "stylize_bytes": "stylize",
    "Report": "stylize",
    # the web page and its API
    "create_app": "serve.app",
    "ServeConfig": "serve.app",
    # training, distilling, judging
    "TrainOptions": "training.options",
    "RunSettings": "training.options",
    "make_options": "training.options",
    "train": "training.train",
    "DistillOptions": "training.distill",
    "distill": "training.distill",
    "resolve_mix": "training.mixing",
    "mixed_model_file": "training.mixing",
    "evaluate": "training.evaluate",
    "mean_score": "training.evaluate",
    "Lpips": "training.similarity",
    # errors
    "StstError": "base.errors",
    "FileProblem": "base.errors",
}

__all__ = ["__version__", *_API]

def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'stst' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
