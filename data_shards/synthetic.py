"""An in-memory stream of procedurally generated batches: for tests, benchmarks and dry runs without shards.

Clean images are smooth random fields (low-pass noise), synthetic inputs add AWGN, "real" inputs add
signal-dependent noise to other images. Deterministic in (seed, rank, batch index); its state is the number of
batches consumed, so resume is exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class SyntheticStream:
    def __init__(self, batch_size: int, patch_size: int = 32, seed: int = 0, rank: int = 0, with_ref: bool = False,
                 sigma: float = 0.1):
        self.batch_size, self.patch_size, self.seed, self.rank = batch_size, patch_size, seed, rank
        self.with_ref, self.sigma = with_ref, sigma
        self.consumed = 0

    def _images(self, g: torch.Generator, n: int) -> torch.Tensor:
        p = self.patch_size
        low = torch.rand(n, 3, max(p // 8, 1), max(p // 8, 1), generator=g)
        return F.interpolate(low, size=(p, p), mode="bicubic", align_corners=False).clamp(0, 1)

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.rank * 7_919 + index)
        b = self.batch_size
        y_s = self._images(g, b)
        clean_r = self._images(g, b)
        out = {"x_s": y_s + self.sigma * torch.randn(y_s.shape, generator=g), "y_s": y_s,
               "x_r": clean_r + (clean_r * self.sigma**2 * 2).sqrt() * torch.randn(clean_r.shape, generator=g)}
        if self.with_ref:
            out["y_ref"] = self._images(g, b)
        return out

    def __iter__(self):
        while True:
            index = self.consumed
            self.consumed += 1  # count before yielding: a checkpoint taken after this batch must not replay it
            yield self.batch(index)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "seed": self.seed, "rank": self.rank}

    def load_state_dict(self, state: dict) -> None:
        self.consumed = state["consumed"]

    def load_resharded(self, states: list[dict]) -> None:
        """States of every rank of a run on another world size: continue after the furthest batch index any of them
        reached (batches are keyed by (seed, rank, index): none this rank yielded before comes again)."""
        self.consumed = max(s["consumed"] for s in states)
