"""daa — Denoising as Adaptation (noise-space domain adaptation for image restoration)."""

__version__ = "0.1.0"
