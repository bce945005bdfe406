"""Mixing two styles: the trained mix against a crossfade of the two outputs (and, for models of one base,
against their averaged weights), and a row of mixes for the README.

For models A and B and each weight w of A, the target is the mix of their paintings' Gram matrices
(w * G_A + (1 - w) * G_B at relu1_2..relu4_3); a picture's style loss is its Gram MSE to that target, summed
over the layers (raw, as `stst evaluate` computes it before its weight). The mix (``stst stylize --model A=w
--model B=1-w``, made by `stst.training.mixing` with its default budget unless ``--minutes``) should be closer
to the target than the crossfade (w * A(photo) + (1 - w) * B(photo)), which only overlays two finished
paintings. LPIPS to the photo says how much of the photo each keeps. Prints the table over the photos given;
``--row`` draws the first photo at each weight, A to B, into one image. Mixes are trained once and kept in
$STST_HOME/mixes.

    python scripts/compare_mix.py starry_night udnie ../shared/data/photos/kodim{04,14,18,20}.png --row docs/mix.jpg
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from stst.base.imageio import read_photo, to_uint8
from stst.base.machine import cpu_name
from stst.model.bundled import resolve_model
from stst.model.checkpoint import load_checkpoint, load_model
from stst.model.mix import Mix, Part, average, share_base
from stst.training.losses import gram, style_targets
from stst.training.mixing import mix_minutes, mixed_model_file
from stst.training.similarity import Lpips
from stst.training.vgg import VGGFeatures
from stst.training.weights import resolve_vgg_weights

LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)


def style_loss(encoder: VGGFeatures, picture: torch.Tensor, target: dict[str, torch.Tensor]) -> float:
    feats = encoder(picture, LAYERS)
    return sum(F.mse_loss(gram(feats[k]), target[k]).item() for k in LAYERS)


def made(parts: list[Part], minutes: float | None) -> tuple[torch.nn.Module, float]:
    """The trained mix's network, and the seconds it took to make (0 when it was kept from before)."""
    start = time.perf_counter()
    path = mixed_model_file(parts, minutes, progress=False, log=lambda message: None)
    return load_model(path)[0], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="a model file or bundled name")
    parser.add_argument("b", help="a model file or bundled name")
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--minutes", type=float, help="the mixes' training budget [default: the mix's default]")
    parser.add_argument("--row", type=Path, help="write the first photo at each weight, A to B, here")
    args = parser.parse_args()
    (path_a, name_a), (path_b, name_b) = resolve_model(args.a), resolve_model(args.b)
    vgg_state = resolve_vgg_weights()[0]
    encoder, lpips = VGGFeatures(vgg_state), Lpips(vgg_state)
    ckpts = [load_checkpoint(path_a), load_checkpoint(path_b)]
    grams = [style_targets(encoder, (c.style_image.float() / 255)[None], LAYERS) for c in ckpts]
    nets = [c.build() for c in ckpts]
    photos = [read_photo(p, max_size=args.size).rgb[None] for p in args.photos]
    one_base = share_base([Part(path_a, name_a, 1), Part(path_b, name_b, 1)], ckpts)
    minutes = mix_minutes(Mix([Part(path_a, name_a, 0.5), Part(path_b, name_b, 0.5)], ckpts), args.minutes)
    print(f"CPU: {cpu_name()}; {len(photos)} photos at {args.size} px; A = {name_a}, B = {name_b} "
          f"({'one base' if one_base else 'trained apart'}); mixes trained {minutes:g} min each")
    print("| weight of A | style loss: mix | crossfade | averaged weights | mix / crossfade | LPIPS: mix | "
          "crossfade | seconds to make |\n|---|---|---|---|---|---|---|---|")
    pictures = []
    for w in WEIGHTS:
        parts = [Part(path_a, name_a, w), Part(path_b, name_b, 1 - w)]
        mixed, seconds = made(parts, minutes) if 0 < w < 1 else (nets[0] if w == 1 else nets[1], 0.0)
        averaged = average(parts, ckpts).build() if one_base else None
        target = {k: w * grams[0][k] + (1 - w) * grams[1][k] for k in LAYERS}
        sums = dict.fromkeys(("mix", "fade", "avg", "lpips_mix", "lpips_fade"), 0.0)
        with torch.no_grad():
            for i, photo in enumerate(photos):
                out = mixed(photo).clamp(0, 1)
                fade = (w * nets[0](photo) + (1 - w) * nets[1](photo)).clamp(0, 1)
                sums["mix"] += style_loss(encoder, out, target) / len(photos)
                sums["fade"] += style_loss(encoder, fade, target) / len(photos)
                if averaged is not None:
                    sums["avg"] += style_loss(encoder, averaged(photo).clamp(0, 1), target) / len(photos)
                sums["lpips_mix"] += lpips(out, photo).item() / len(photos)
                sums["lpips_fade"] += lpips(fade, photo).item() / len(photos)
                if i == 0:
                    pictures.append(Image.fromarray(to_uint8(out[0])))
        avg = f"{sums['avg']:.3g}" if averaged is not None else "-"
        print(f"| {w:g} | {sums['mix']:.3g} | {sums['fade']:.3g} | {avg} | {sums['mix'] / sums['fade']:.2f} | "
              f"{sums['lpips_mix']:.3f} | {sums['lpips_fade']:.3f} | {seconds:.0f} |", flush=True)
    if args.row:
        height = 256
        tiles = [p.resize((round(p.width * height / p.height), height), Image.Resampling.LANCZOS) for p in pictures]
        row = Image.new("RGB", (sum(t.width for t in tiles), height))
        for i, tile in enumerate(tiles):
            row.paste(tile, (sum(t.width for t in tiles[:i]), 0))
        row.save(args.row, quality=88)
        print(f"wrote {args.row}")


if __name__ == "__main__":
    main()
