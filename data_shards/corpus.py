"""Read a photo corpus: a folder of PNGs and a `manifest.json` listing each photo's file, origin, licence and split
("split": S/U/E/V/F/G/H for DAA-mini's corpus). The writer's and valset's `--corpus` modes read a corpus through
this; building one (DAA-mini's offline photos) is a study tool, launch/studies/photo_corpus.py."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

MANIFEST = "manifest.json"


def load_photo(path: str) -> np.ndarray:
    """Read an image file as float32 HxWx3 RGB in [0,1] (grayscale and RGBA are converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def load_manifest(directory: str) -> list[dict]:
    """The corpus' photo records; each gets an absolute "path" added next to its relative "file"."""
    with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
        photos = json.load(f)["photos"]
    return [{**p, "path": os.path.abspath(os.path.join(directory, p["file"]))} for p in photos]
