"""What a model file holds, for ``stst info``: style, training, losses, architecture and cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.fileio import file_sha256
from .checkpoint import load_checkpoint


def model_info(path: str | Path) -> dict[str, Any]:
    """The file's identity, its network and cost, and its metadata exactly as stored."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    macs = ckpt.arch.macs_per_pixel()
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in ckpt.state_dict.values()})
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "architecture": {
            **ckpt.arch.to_dict(),
            "parameters": sum(t.numel() for t in ckpt.state_dict.values()),
            "stored_as": dtypes,
            "macs_per_pixel": macs,
            "gflop_per_megapixel": round(2 * macs / 1e3, 1),
        },
        "resumable": ckpt.training is not None,
        "metadata": ckpt.metadata,
    }


def _minutes(seconds: Any) -> float | None:
    return seconds / 60 if isinstance(seconds, (int, float)) else None


def _g(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "?"


def _count(count: Any, noun: str) -> str:
    """``1 iteration``, ``500 iterations``; ``? iterations`` where the file does not say."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _style_line(style: dict[str, Any], size: str) -> str:
    """The painting (its title, file, size and licence), or a mix's parts with their shares."""
    if isinstance(style.get("mix"), list):
        shares = ", ".join(f"{p.get('name', '?')} {100 * p.get('weight', 0):.0f}%" for p in style["mix"])
        return f"a mix of {shares}"
    return (f"{style.get('title') or style.get('name', '?')} [{style.get('name', '?')}, {size}"
            f"{', ' + style['licence'] if 'licence' in style else ''}]")


def describe(info: dict[str, Any]) -> list[str]:
    """Readable lines for a terminal; absent metadata (a bare state_dict) shows as '?'."""
    meta, arch = info["metadata"], info["architecture"]
    style, options, losses = meta.get("style", {}), meta.get("options", {}), meta.get("losses", {})
    hardware, teacher, init = meta.get("hardware", {}), meta.get("distilled_from"), meta.get("init")
    size = "x".join(str(s) for s in reversed(style.get("size", []))) or "?"
    layers = ", ".join(f"{k}:{v:g}" for k, v in options.get("style_layers", {}).items()) or "?"
    minutes = _minutes(meta.get("train_seconds"))
    rows = [
        ("model", f"{info['file']} ({info['bytes'] / 1e6:.1f} MB, sha256 {info['sha256']})"),
        ("style", _style_line(style, size)),
        ("training", f"{_count(meta.get('iterations', '?'), 'iteration')}, "
                     f"{f'{minutes:.1f} min' if minutes is not None else '?'} on "
                     f"{hardware.get('gpu') or hardware.get('cpu', '?')} ({hardware.get('device', '?')}, "
                     f"{_count(hardware.get('threads', '?'), 'thread')}), created {meta.get('created', '?')}"),
        ("options", f"crops {options.get('image_size', '?')} px, batch {options.get('batch_size', '?')}, "
                    f"lr {options.get('lr', '?')} {options.get('lr_schedule', '')}, weights content "
                    f"{_g(options.get('content_weight'))} style {_g(options.get('style_weight'))} tv "
                    f"{_g(options.get('tv_weight'))}, content layer {options.get('content_layer', '?')}, "
                    f"style layers {layers}, seed {options.get('seed', '?')}"
                    f"{', temporal ' + _g(options['temporal_weight']) if options.get('temporal_weight') else ''}"
                    f"{', palette ' + _g(options['palette_weight']) if options.get('palette_weight') else ''}"
                    f"{', colours fitted to the painting' if meta.get('colour_map') else ''}"),
        ("dataset", f"{meta.get('dataset', {}).get('path', '?')} ({_count(meta.get('dataset', {}).get('images', '?'), 'image')})"),
        ("losses", f"content {_g(losses.get('content'))}, style {_g(losses.get('style'))}, tv {_g(losses.get('tv'))}, "
                   f"{'palette ' + _g(losses['palette']) + ', ' if 'palette' in losses else ''}"
                   f"total {_g(losses.get('total'))} (last training batch)"),
        ("network", f"{arch.get('design', 'johnson')} design, width {arch['channels']}, residual "
                    f"{'on' if arch['residual'] else 'off'}, {arch['parameters'] / 1e6:.2f} M parameters stored as "
                    f"{'/'.join(arch['stored_as'])}, {arch['macs_per_pixel']:,} MACs per pixel "
                    f"({arch['gflop_per_megapixel']} GFLOP per megapixel)"
                    f"{', resumable' if info['resumable'] else ''}"),
        *([("from", f"fine-tuned from {init.get('name', '?')} (sha256 {init.get('sha256', '?')}, "
                    f"{_count(init.get('iterations', '?'), 'iteration')}, {_g(_minutes(init.get('train_seconds')))} min); "
                    "the training row counts the fine-tuning only")] if init else []),
        *([("distilled", f"from {teacher.get('model', '?')} (width {teacher.get('teacher_width', '?')}, sha256 "
                         f"{teacher.get('sha256', '?')}): {_count(teacher.get('iterations', '?'), 'iteration')}, "
                         f"{_g(_minutes(teacher.get('seconds')))} min, final L1 loss {_g(teacher.get('loss'))}; "
                         "training rows above are the teacher's")] if teacher else []),
        ("versions", f"stst {meta.get('stst_version', '?')}, torch {meta.get('torch_version', '?')}"),
    ]
    return [f"{name:<9} {text}" for name, text in rows]
