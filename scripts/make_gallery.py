"""Contact sheet of the bundled styles: one row per Kodak photo, the style image and each full model's output,
and a last row with the tiers of the default style (full, light, realtime) side by side on the first photo.

    python scripts/make_gallery.py            # writes docs/gallery.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from stst.model.bundled import DEFAULT_MODEL, bundled_styles
from stst.model.checkpoint import load_model
from stst.base.imageio import read_photo, to_uint8
from stst.infer.engine import stylize_tensor

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
LABEL = 28


def cell(img: Image.Image, width: int, height: int) -> Image.Image:
    """Fit ``img`` inside width x height on white, keeping its aspect."""
    img = img.copy()
    img.thumbnail((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="*", default=["kodim23", "kodim05", "kodim21", "kodim14"])
    parser.add_argument("--size", type=int, default=512, help="long side at which photos are stylized and shown")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "gallery.jpg")
    args = parser.parse_args()
    styles = bundled_styles()
    models = {name: load_model(tiers["full"]) for name, tiers in styles.items()}
    width, height = args.size, round(args.size * 2 / 3)
    rows = 1 + len(args.photos) + 1
    sheet = Image.new("RGB", (width * (1 + len(models)), 2 * LABEL + height * rows), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 6), "photo / style", fill="black")
    for col, (name, (model, ckpt)) in enumerate(models.items(), start=1):
        draw.text((col * width + 8, 6), name, fill="black")
        style = Image.fromarray(ckpt.style_image.permute(1, 2, 0).numpy())
        sheet.paste(cell(style, width, height), (col * width, LABEL))
    photos = [read_photo(PHOTOS / f"{name}.png", max_size=args.size).rgb for name in args.photos]
    for row, photo in enumerate(photos, start=1):
        top = LABEL + row * height
        sheet.paste(cell(Image.fromarray(to_uint8(photo)), width, height), (0, top))
        for col, (model, _) in enumerate(models.values(), start=1):
            out = stylize_tensor(model, photo[None])[0]
            sheet.paste(cell(Image.fromarray(to_uint8(out)), width, height), (col * width, top))
    top = LABEL + rows * height - height + LABEL  # the tiers row, under a label line of its own
    sheet.paste(cell(Image.fromarray(to_uint8(photos[0])), width, height), (0, top))
    for col, (tier, path) in enumerate(styles[DEFAULT_MODEL].items(), start=1):
        model, ckpt = load_model(path)
        draw.text((col * width + 8, top - LABEL + 6), f"{DEFAULT_MODEL}: {tier} ({ckpt.arch.macs_per_pixel():,} "
                  "MACs/pixel)", fill="black")
        sheet.paste(cell(Image.fromarray(to_uint8(stylize_tensor(model, photos[0][None])[0])), width, height),
                    (col * width, top))
    args.output.parent.mkdir(exist_ok=True)
    sheet.save(args.output, quality=88)
    print(f"wrote {args.output} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
