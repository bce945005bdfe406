"""Mixing two styles: the mixed network (weights averaged) against a crossfade of the two outputs, and a row of
mixes for the README.

For models A and B fine-tuned from one base and each weight w of A, the target is the mix of their paintings'
Gram matrices (w * G_A + (1 - w) * G_B at relu1_2..relu4_3); a picture's style loss is its Gram MSE to that
target, summed over the layers (raw, as `stst evaluate` computes it before its weight). The mixed network's
picture should be closer to the mixed target than the crossfade's (w * A(photo) + (1 - w) * B(photo)), which
only overlays two finished paintings. Prints the table over the photos given; ``--row`` draws the first photo
at each weight, A to B, into one image.

    python scripts/compare_mix.py A.pth B.pth ../shared/data/photos/kodim{04,14,18,20}.png --row docs/mix.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from stst.base.imageio import read_photo, to_uint8
from stst.base.machine import cpu_name
from stst.model.checkpoint import load_checkpoint, load_model
from stst.model.mix import Part, mix_checkpoints
from stst.training.losses import gram, style_targets
from stst.training.vgg import VGGFeatures
from stst.training.weights import resolve_vgg_weights

LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)


def style_loss(encoder: VGGFeatures, picture: torch.Tensor, target: dict[str, torch.Tensor]) -> float:
    feats = encoder(picture, LAYERS)
    return sum(F.mse_loss(gram(feats[k]), target[k]).item() for k in LAYERS)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--row", type=Path, help="write the first photo at each weight, A to B, here")
    args = parser.parse_args()
    encoder = VGGFeatures(resolve_vgg_weights()[0])
    grams = [style_targets(encoder, (load_checkpoint(m).style_image.float() / 255)[None], LAYERS) for m in (args.a, args.b)]
    nets = [load_model(m)[0] for m in (args.a, args.b)]
    photos = [read_photo(p, max_size=args.size).rgb[None] for p in args.photos]
    pictures = []
    print(f"CPU: {cpu_name()}; {len(photos)} photos at {args.size} px; A = {args.a.stem}, B = {args.b.stem}")
    print("| weight of A | style loss of the mix | of the crossfade | mix / crossfade |\n|---|---|---|---|")
    for w in WEIGHTS:
        parts = [Part(args.a, args.a.stem, w), Part(args.b, args.b.stem, 1 - w)]
        mixed = mix_checkpoints(parts).build()
        target = {k: w * grams[0][k] + (1 - w) * grams[1][k] for k in LAYERS}
        ours = fade = 0.0
        for i, photo in enumerate(photos):
            out = mixed(photo).clamp(0, 1)
            fade_out = (w * nets[0](photo) + (1 - w) * nets[1](photo)).clamp(0, 1)
            ours += style_loss(encoder, out, target) / len(photos)
            fade += style_loss(encoder, fade_out, target) / len(photos)
            if i == 0:
                pictures.append(Image.fromarray(to_uint8(out[0])))
        print(f"| {w:g} | {ours:.3g} | {fade:.3g} | {ours / fade:.2f} |")
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
