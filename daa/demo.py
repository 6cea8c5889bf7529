"""`make demo` — for now a smoke run of the DAA objective on one offline photo (no data sets, no network).

The real demo (shards from the offline photo corpus, baseline vs DAA trained with DeepSpeed on 2 CPU ranks, a PSNR
table and sample grids) arrives with the training issue; this placeholder says so when run.
"""
from __future__ import annotations

import time

import torch
from skimage import data as skdata

from daa.metrics import psnr
from daa.models import build_diffusion_unet, build_restorer
from daa.objective import DAAObjective, ObjectiveConfig


def main(steps: int = 60, patch: int = 32, batch: int = 4) -> None:
    print("daa demo — SMOKE PLACEHOLDER: trains the tiny DAA objective for a few steps on one bundled photo.\n"
          "The full demo (shards, DeepSpeed 2-rank training, baseline vs DAA table) comes with the training issue.")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    img = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float() / 255  # public-domain NASA photo
    ys, xs = torch.randint(0, img.shape[1] - patch, (2 * batch,), generator=g), torch.randint(
        0, img.shape[2] - patch, (2 * batch,), generator=g)
    crops = torch.stack([img[:, y:y + patch, x:x + patch] for y, x in zip(ys, xs)])
    y_s, real_clean = crops[:batch], crops[batch:]
    x_s = y_s + 25 / 255 * torch.randn(y_s.shape, generator=g)  # synthetic: AWGN σ=25
    x_r = real_clean + (real_clean * 0.02).sqrt() * torch.randn(real_clean.shape, generator=g)  # signal-dependent
    obj = DAAObjective(build_restorer("unet", preset="tiny"), build_diffusion_unet("tiny"), ObjectiveConfig())
    opt = torch.optim.Adam(obj.parameters(), lr=2e-3)
    t0 = time.time()
    for step in range(steps):
        out = obj({"x_s": x_s, "y_s": y_s, "x_r": x_r}, alpha=0.2, generator=g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step:3d}  loss {out['loss'].item():.4f}  pix {out['pix'].item():.4f}  "
                  f"noise {out['noise'].item():.4f}")
    with torch.no_grad():
        restored = obj.restorer.restore(x_r)
    print(f"done in {time.time() - t0:.1f}s; real-like input PSNR {psnr(x_r, real_clean).mean():.2f} dB → "
          f"restored {psnr(restored, real_clean).mean():.2f} dB "
          f"(tiny model, {steps} steps: a smoke test, not a result)")


if __name__ == "__main__":
    main()
