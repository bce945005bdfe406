"""Contact sheet of the bundled models: one row per Kodak photo, the style image and each model's output.

    python scripts/make_gallery.py            # writes docs/gallery.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from stst.model.bundled import bundled_models
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
    models = {name: load_model(path) for name, path in bundled_models().items()}
    width, height = args.size, round(args.size * 2 / 3)
    sheet = Image.new("RGB", (width * (1 + len(models)), LABEL + height * (1 + len(args.photos))), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 6), "photo / style", fill="black")
    for col, (name, (model, ckpt)) in enumerate(models.items(), start=1):
        draw.text((col * width + 8, 6), name, fill="black")
        style = Image.fromarray(ckpt.style_image.permute(1, 2, 0).numpy())
        sheet.paste(cell(style, width, height), (col * width, LABEL))
    for row, name in enumerate(args.photos, start=1):
        photo = read_photo(PHOTOS / f"{name}.png", max_size=args.size).rgb
        top = LABEL + row * height
        sheet.paste(cell(Image.fromarray(to_uint8(photo)), width, height), (0, top))
        for col, (model, _) in enumerate(models.values(), start=1):
            out = stylize_tensor(model, photo[None])[0]
            sheet.paste(cell(Image.fromarray(to_uint8(out)), width, height), (col * width, top))
    args.output.parent.mkdir(exist_ok=True)
    sheet.save(args.output, quality=88)
    print(f"wrote {args.output} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
