"""Installs the three daa packages: the method (daa), the fused kernels (kernels) and the data layer (data_shards).

torch is deliberately unpinned here: CPU users get the pinned CPU wheel from `make install`, GPU users bring the
torch build that matches their CUDA. Everything else is a plain dependency.
"""
from setuptools import find_packages, setup

setup(
    name="daa",
    version="0.1.0",
    description="Denoising as Adaptation: noise-space domain adaptation for image restoration (training stack)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["daa", "daa.*", "kernels", "kernels.*", "data_shards", "data_shards.*"]),
    package_data={"daa": ["configs/*.yaml"]},  # named configs (--config demo) load from an installed wheel
    install_requires=[
        "torch>=2.1",
        "numpy",
        # the Triton the kernels are tested with (make install's pin, the one CUDA torch 2.13 pins); numerics and the
        # compile check change across minor releases, so a new one is added here once tests/ pass on it
        "triton>=3.7.1,<3.8",
        "deepspeed>=0.14",
        "webdataset>=0.2.86",
        "accelerate",
        "ninja",
        "pillow",
        "scikit-image",
        "h5py",  # SIDD .mat blocks in MATLAB v7.3 (HDF5) format (daa.protocols)
        "opencv-python-headless",  # 16-bit colour PNG in and out (Pillow cannot hold it)
        "tqdm",
        "tensorboard",
        "safetensors",
        "pyyaml",
        "scikit-learn",  # bundled sample photos for the offline corpus (china, flower)
        "matplotlib",  # a bundled photo (grace_hopper) and the demo's loss-curve plot
    ],
    entry_points={"console_scripts": [
        "daa-train=daa.train:cli",
        "daa-restore=daa.restore:main",
        "daa-export=daa.export:main",
        "daa-evaluate=daa.evaluate:main",
        "daa-diagnose=daa.diagnose:main",
        "daa-shards=data_shards.write:main",
        "daa-valset=data_shards.valset:main",
        "daa-noise-stats=data_shards.noise_stats:main",
    ]},
    extras_require={
        "dev": ["pytest", "pytest-timeout", "ruff", "vulture", "onnx", "onnxruntime"],  # vulture, ONNX: tests
        "onnx": ["onnx", "onnxruntime"],  # daa-export --onnx, daa-restore --weights x.onnx
        "gpu": ["xformers"],
    },
)
