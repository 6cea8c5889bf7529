"""Named configs and --set overrides (daa/config.py)."""
from daa.config import load_config


def test_a_str_override_keeps_its_text():
    """`--set data.value_range=01` is the string '01' (YAML alone reads it as the integer 1, and the run failed)."""
    assert load_config("daa_mini", ["data.value_range=01"]).data.value_range == "01"
    assert load_config("daa_mini", ["data.value_range=11"]).data.value_range == "11"
    cfg = load_config("daa_mini", ["objective.kernels=null", "optim.diffusion_lr=1e-4", "run.total_images=64"])
    assert cfg.objective.kernels is None and cfg.optim.diffusion_lr == 1e-4 and cfg.run.total_images == 64
