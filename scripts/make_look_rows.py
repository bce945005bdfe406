"""Rows of strengths, stroke scales and colour preservation on one Kodak photo, for the README.

    python scripts/make_look_rows.py            # writes docs/look.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from make_gallery import LABEL, PHOTOS, ROOT, cell
from stst.model.bundled import bundled_models
from stst.model.checkpoint import load_model
from stst.base.imageio import read_photo, to_uint8
from stst.infer.look import Look

ROWS = [
    ("strength", [(f"--strength {s}", Look(strength=s)) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]),
    ("stroke scale", [(f"--stroke-scale {s:g}", Look(stroke_scale=s)) for s in (0.5, 1.0, 1.5, 2.0, 3.0)]),
    ("colours", [("photo", Look(strength=0.0)), ("plain", Look()), ("--preserve-colors", Look(preserve_colors=True)),
                 ("+ --stroke-scale 2", Look(preserve_colors=True, stroke_scale=2.0)),
                 ("+ --strength 0.6", Look(preserve_colors=True, strength=0.6))]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="kodim23")
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--size", type=int, default=384, help="long side at which the photo is stylized and shown")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "look.jpg")
    args = parser.parse_args()
    model, _ = load_model(bundled_models()[args.model])
    network = lambda x: model(x).clamp(0, 1)  # noqa: E731
    photo = read_photo(PHOTOS / f"{args.photo}.png", max_size=args.size).rgb[None]
    width, height = photo.shape[-1], photo.shape[-2]
    columns = max(len(cells) for _, cells in ROWS)
    sheet = Image.new("RGB", (width * columns, (LABEL + height) * len(ROWS)), "white")
    draw = ImageDraw.Draw(sheet)
    with torch.inference_mode():
        for row, (_, cells) in enumerate(ROWS):
            top = row * (LABEL + height)
            for col, (label, look) in enumerate(cells):
                out = look.apply(network, photo)[0]
                draw.text((col * width + 8, top + 6), label, fill="black")
                sheet.paste(cell(Image.fromarray(to_uint8(out)), width, height), (col * width, top + LABEL))
    args.output.parent.mkdir(exist_ok=True)
    sheet.save(args.output, quality=88)
    print(f"wrote {args.output} ({sheet.width}x{sheet.height}, model {args.model}, photo {args.photo})")


if __name__ == "__main__":
    main()
