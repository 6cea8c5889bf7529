"""Contact sheet of the six degradations (clean | source | target, per task) on pool-P photos, for a human look.

Uses only photos bundled in the scikit-image wheel, so it works without the Debian pool and without a built corpus.
Each tile is labelled with its input PSNR (dB, RGB, peak 1). The target blur is drawn with saturation on (it is on
for half the target images) so the sheet shows the bright highlight streaks the model is meant to produce.

    python -m data_shards.contact_sheet --out docs/degradations.png
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from .degrade import TASKS, degrade

# (photo, top, left): hand-picked 160^2 crops with texture, edges and highlights (cup rim, helmet, flame).
CROPS = (("coffee", 40, 60), ("astronaut", 20, 170), ("rocket", 200, 280))
TILE, GAP, HEAD, LEFT = 160, 4, 14, 92
_OVERRIDES = {("deblur", "target"): {"saturation_prob": 1.0}}


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(x, 0, 1) - ref) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def _crop(name: str, top: int, left: int, size: int) -> np.ndarray:
    import skimage.data as skd

    img = getattr(skd, name)().astype(np.float32) / 255.0
    return img[top : top + size, left : left + size]


def make_sheet(size: int = TILE, seed: int = 0) -> Image.Image:
    """Rows = task x photo, columns = clean | source | target."""
    crops = [(name, _crop(name, t, l, size)) for name, t, l in CROPS]
    rows = [(task, name, clean) for task in TASKS for name, clean in crops]
    width = LEFT + 3 * (size + GAP)
    height = HEAD + len(rows) * (size + HEAD + GAP)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(("clean", "source", "target")):
        draw.text((LEFT + c * (size + GAP) + 2, 1), title, fill="black")
    for r, (task, name, clean) in enumerate(rows):
        y = HEAD + r * (size + HEAD + GAP)
        draw.text((4, y + HEAD + size // 2 - 12), f"{task}\n{name}", fill="black")
        rng = np.random.default_rng([seed, r])
        tiles = [(clean, "")]
        for domain in ("source", "target"):
            out, params = degrade(clean, task, domain, rng, **_OVERRIDES.get((task, domain), {}))
            tiles.append((out, f"{params['name']} {_psnr(out, clean):.1f} dB"))
        for c, (tile, label) in enumerate(tiles):
            x = LEFT + c * (size + GAP)
            draw.text((x + 2, y + 1), label, fill="black")
            sheet.paste(Image.fromarray(np.clip(np.rint(tile * 255), 0, 255).astype(np.uint8)), (x, y + HEAD))
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_shards.contact_sheet", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/degradations.png", help="PNG to write")
    ap.add_argument("--size", type=int, default=TILE, help="crop side in px (128-192 keeps the PNG small)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    make_sheet(args.size, args.seed).save(args.out, format="PNG", optimize=True)
    print(f"contact sheet: {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
