"""Named configs and --set overrides (daa/config.py)."""
from daa.config import identity_dict, load_config


def test_a_str_override_keeps_its_text():
    """`--set data.value_range=01` is the string '01' (YAML alone reads it as the integer 1, and the run failed)."""
    assert load_config("daa_mini", ["data.value_range=01"]).data.value_range == "01"
    assert load_config("daa_mini", ["data.value_range=11"]).data.value_range == "11"
    cfg = load_config("daa_mini", ["objective.kernels=null", "optim.diffusion_lr=1e-4", "run.total_images=64"])
    assert cfg.objective.kernels is None and cfg.optim.diffusion_lr == 1e-4 and cfg.run.total_images == 64


def test_later_fields_leave_the_identity_of_older_runs_alone():
    """A field added after runs were made is out of the config hash while at its default (those runs train exactly
    as before), and in it once set: a cool-down run is another run, never a resume of a plain one."""
    from daa.config import LATER_FIELDS, identity_dict

    plain = load_config("daa_mini", [])
    d = identity_dict(plain)
    for k in LATER_FIELDS:
        sec, key = k.split(".")
        assert key not in d[sec]
    cool = load_config("daa_mini", ["objective.alpha_decay_start_images=8000", "objective.alpha_decay_images=8000"])
    assert cool.hash() != plain.hash()
    assert identity_dict(cool)["objective"]["alpha_decay_images"] == 8000
    assert load_config("daa_mini", ["objective.alpha_decay_images=0"]).hash() == plain.hash()


def test_remote_data_fields_do_not_change_a_runs_identity():
    """How long a remote read may take, and whether manifests may name other hosts, does not change what is trained:
    a run resumes with other values, and runs made before these fields existed keep their hash."""
    plain = load_config("demo")
    other = load_config("demo", ["data.read_timeout=5", "data.min_rate=1", "data.rate_window=2",
                                 "data.verify_sha256=false", "data.trust_manifest_locations=true"])
    assert other.hash() == plain.hash()
    assert "read_timeout" not in identity_dict(plain)["data"]
