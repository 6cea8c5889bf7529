"""Data-loader benchmark: `python launch/bench/loader.py` (appends to docs/benchmarks/data_loader*.csv).

Three numbers per layout, all in samples/s in ONE process (what one DataLoader worker delivers):

1. **per-file loader** — the official style (spec §5.3): a torch Dataset that opens and decodes every image of a
   sample from its own PNG file, converts the *whole* image to float, crops, augments, and for denoising reads the
   clean file twice (DFWB is both data_root and gt_root) before adding AWGN; a DataLoader collates the batch.
2. **shard reader** — `TrainStream(num_workers=0)` over shards written from the very same files, read from disk and
   the same shards served over HTTP from 127.0.0.1 (`data.shards=http://...`; the HTTP/disk column).
3. **training step** — one tiny DAA objective step (forward + backward + Adam) on CPU at the same batch and patch:
   the rate at which training consumes samples (`import daa` lazily; skipped with a note if it fails).

Layouts: `denoise` (clean tiles + AWGN on the fly + real) and `paired` (syn + gt + real, the deblur/derain case).
Photos are the ones bundled with scikit-image, tiled like the official preparation (`--tile`, default 512).
Per-file and shard rates are measured in interleaved rounds and the medians reported (the CI box is shared).
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a checkout tool: launch.harness + the packages
from data_shards import write  # noqa: E402
from data_shards.stream import StreamConfig, TrainStream  # noqa: E402
from launch.harness import CsvLog, free_port, git_sha  # noqa: E402

CSV = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "benchmarks", "data_loader.csv")
FIELDS = ["timestamp", "host", "git_sha", "layout", "tile", "patch", "batch", "perfile_sps", "shard_sps",
          "shard_over_perfile", "step_sps", "loader_over_step", "torch_threads", "note", "http_sps", "http_over_disk"]


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------

def make_folders(root: str, tile: int) -> dict[str, list[str]]:
    """gt/ syn/ real/ PNG tiles from scikit-image's bundled photos (syn: AWGN σ=25, real: noisier, both quantized)."""
    from skimage import data as skdata

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry"]
    rng = np.random.default_rng(0)
    paths: dict[str, list[str]] = {"gt": [], "syn": [], "real": []}
    for d in paths:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in names:
        img = getattr(skdata, name)()[:, :, :3]
        h, w = img.shape[:2]
        for y, x, th, tw in write.grid_boxes(h, w, tile, tile, 0):
            t = img[y:y + th, x:x + tw]
            f = f"{name}_{y}_{x}.png"
            noisy = {"gt": t, "syn": t + rng.normal(0, 25, t.shape), "real": t + rng.normal(0, 12, t.shape) *
                     np.sqrt(t / 64.0 + 0.2)}
            for d, a in noisy.items():
                Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8)).save(os.path.join(root, d, f))
                paths[d].append(os.path.join(root, d, f))
    return paths


class PerFileDataset(torch.utils.data.Dataset):
    """The official loading path (data/dataset.py + core/dataset_utils.py), with PIL for cv2."""

    def __init__(self, syn: list[str], gt: list[str], real: list[str], patch: int, awgn: bool):
        self.syn, self.gt, self.real, self.p, self.awgn = syn, gt, real, patch, awgn

    def __len__(self) -> int:
        return len(self.gt)

    @staticmethod
    def _read(path: str) -> np.ndarray:
        with Image.open(path) as im:  # one file open + full decode + whole-image float conversion per image
            return np.asarray(im.convert("RGB")).astype(np.float32) / 255.0

    def _crop(self, imgs: list[np.ndarray]) -> list[np.ndarray]:
        h, w = imgs[0].shape[:2]
        y, x = np.random.randint(0, h - self.p + 1), np.random.randint(0, w - self.p + 1)
        k = np.random.randint(8)
        out = []
        for a in imgs:
            a = np.rot90(a[y:y + self.p, x:x + self.p], k % 4)
            out.append(a[::-1] if k >= 4 else a)
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        syn_path = self.gt[i] if self.awgn else self.syn[i]  # denoising: data_root == gt_root (file read twice)
        syn, gt = self._crop([self._read(syn_path), self._read(self.gt[i])])
        (real,) = self._crop([self._read(self.real[i % len(self.real)])])
        if self.awgn:
            syn = syn + np.random.uniform(0, 75 / 255) * np.random.randn(*syn.shape).astype(np.float32)

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

        return {"x_s": t(syn), "y_s": t(gt), "x_r": t(real)}


def _rate(it, batch: int, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return batch * n / (time.perf_counter() - t0)


def perfile_rate(paths, patch, batch, n, awgn) -> float:
    ds = PerFileDataset(paths["syn"], paths["gt"], paths["real"], patch, awgn)

    def forever():
        while True:
            yield from torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)

    return _rate(forever(), batch, n)


def shard_rate(shard_dir, patch, batch, n) -> float:
    return _rate(iter(TrainStream(StreamConfig(shard_dir, patch_size=patch, batch_size=batch, num_workers=0))),
                 batch, n)


def serve(directory: str) -> tuple[subprocess.Popen, str]:
    """The shard folder over HTTP on 127.0.0.1 by `python -m http.server` in its own process (a server in the reader's
    process would compete with it for the GIL, which a real server does not): (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                             directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):  # until it answers
        try:
            urllib.request.urlopen(url + "/manifest.json", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    return proc, url


def step_rate(patch: int, batch: int, n: int) -> tuple[float | None, str]:
    """Samples/s one tiny DAA step consumes (restorer 'unet' tiny + diffusion U-Net tiny, fwd + bwd + Adam)."""
    try:
        from daa.models import build_diffusion_unet, build_restorer
        from daa.objective import DAAObjective, ObjectiveConfig
    except Exception as e:  # noqa: BLE001 - the column is optional
        return None, f"step skipped: daa not importable ({type(e).__name__}: {e})"
    obj = DAAObjective(build_restorer("unet", preset="tiny"), build_diffusion_unet("tiny"), ObjectiveConfig())
    opt = torch.optim.Adam(obj.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    b = {k: torch.rand(batch, 3, patch, patch, generator=g) for k in ("x_s", "y_s", "x_r")}

    def steps():
        while True:
            out = obj(b, alpha=0.1, generator=g)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            yield

    note = f"step = tiny DAA (unet tiny + diffusion tiny), fwd+bwd+Adam, batch {batch}"
    return _rate(steps(), batch, n, warmup=1), note


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python launch/bench/loader.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tile", type=int, default=512, help="stored tile size (official 512)")
    ap.add_argument("--patch", type=int, default=128, help="training crop (paper 128)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    ap.add_argument("--step-batch", type=int, default=4, help="batch of the timed training step (samples/s is per "
                    "sample, so a small batch keeps the CPU run short)")
    ap.add_argument("--step-batches", type=int, default=1, help="timed training steps (after 1 warm-up step)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (medians are reported)")
    ap.add_argument("--layouts", default="denoise,paired")
    ap.add_argument("--no-step", action="store_true")
    ap.add_argument("--csv", default=CSV, help="append results here ('' = do not write)")
    args = ap.parse_args(argv)

    work = tempfile.mkdtemp(prefix="daa-bench-")
    rows = []
    try:
        paths = make_folders(os.path.join(work, "files"), args.tile)
        step, note = (None, "step skipped (--no-step)") if args.no_step else step_rate(args.patch, args.step_batch,
                                                                                      args.step_batches)
        for layout in args.layouts.split(","):
            awgn = layout == "denoise"
            out = os.path.join(work, f"shards-{layout}")
            flags = ["--gt", os.path.join(work, "files", "gt"), "--real", os.path.join(work, "files", "real")]
            flags += ["--syn-on-the-fly"] if awgn else ["--syn", os.path.join(work, "files", "syn")]
            if write.main(["--task", "denoise" if awgn else "deblur", *flags, "--out", out, "-q"]) != 0:
                return 1
            pfs, shs, hts = [], [], []
            srv, url = serve(out)
            try:
                for _ in range(args.rounds):  # interleaved rounds, medians: the box is shared and its load drifts
                    pfs.append(perfile_rate(paths, args.patch, args.batch, args.batches, awgn))
                    shs.append(shard_rate(out, args.patch, args.batch, args.batches))
                    hts.append(shard_rate(url, args.patch, args.batch, args.batches))
            finally:
                srv.terminate()
                srv.wait()
            pf, sh, ht = float(np.median(pfs)), float(np.median(shs)), float(np.median(hts))
            rows.append({"layout": layout, "perfile_sps": pf, "shard_sps": sh, "shard_over_perfile": sh / pf,
                         "step_sps": step, "loader_over_step": sh / step if step else None, "http_sps": ht,
                         "http_over_disk": ht / sh})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n_tiles = len(paths["gt"])
    print(f"\ndata loader benchmark: {n_tiles} tiles of <= {args.tile}px, crops {args.patch}², batch {args.batch}, "
          f"1 process, torch threads {torch.get_num_threads()}, host {socket.gethostname()}")
    hdr = (f"{'layout':<8} {'per-file':>10} {'shards':>10} {'shards/per-file':>16} {'step':>10} {'shards/step':>12} "
           f"{'HTTP':>10} {'HTTP/disk':>10}")
    print(hdr + "\n" + "-" * len(hdr))
    for r in rows:
        st = "n/a" if r["step_sps"] is None else f"{r['step_sps']:.1f}"
        ls = "n/a" if r["loader_over_step"] is None else f"{r['loader_over_step']:.1f}x"
        print(f"{r['layout']:<8} {r['perfile_sps']:>10.1f} {r['shard_sps']:>10.1f} {r['shard_over_perfile']:>15.2f}x "
              f"{st:>10} {ls:>12} {r['http_sps']:>10.1f} {r['http_over_disk']:>9.2f}x")
    print(f"(samples/s; HTTP = the same shards served from 127.0.0.1 by `python -m http.server` in another "
          f"process; {note})")
    if args.csv:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        log = CsvLog(args.csv, FIELDS, allow_alt=True)  # the CSV before the HTTP columns: rows go to *_v2.csv
        n = log.append({"timestamp": now, "host": socket.gethostname(), "git_sha": git_sha(), "tile": args.tile,
                        "patch": args.patch, "batch": args.batch, "torch_threads": torch.get_num_threads(),
                        "note": note, **{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()}}
                       for r in rows)
        print(f"appended {n} rows to {os.path.normpath(log.path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
