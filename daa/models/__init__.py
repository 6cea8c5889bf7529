"""Networks: residual restorers (by name) and the conditional diffusion noise predictor."""
from .base import Restorer, count_parameters, kaiming_init_
from .diffusion_unet import DiffusionUNet, DiffusionUNetConfig, build_diffusion_unet
from .registry import build_restorer, restorer_config, restorer_names

__all__ = [
    "Restorer",
    "DiffusionUNet",
    "DiffusionUNetConfig",
    "build_diffusion_unet",
    "build_restorer",
    "restorer_config",
    "restorer_names",
    "count_parameters",
    "kaiming_init_",
]
