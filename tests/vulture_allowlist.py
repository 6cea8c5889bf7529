# ruff: noqa
"""What the dead-code scan (vulture, tests/test_layers.py) reports but is used — each line says by whom. A new
finding either goes (dead code) or gets a line here with its reason."""
_.forward  # nn.Module.forward and autograd.Function.forward: called by torch, never by name
DnCNN, MiniUNet, NAFNet, Restormer, UNetRestorer  # @register_restorer classes: built by name (daa.models.registry)
_.benchmark  # torch.backends.cudnn.benchmark: read by torch
_.fill_uninitialized_memory  # torch.utils.deterministic.fill_uninitialized_memory: read by torch
_.load_universal_checkpoint  # DeepSpeed engine config flag: read by engine.load_checkpoint
signum, frame  # a signal handler's signature
worker_id  # a DataLoader worker_init_fn's signature
exc  # a context manager __exit__'s signature
q_sample  # the forward process as a public helper; tests/test_diffusion.py checks the schedule through it
half_life_from_decay  # public: converts an official EMA decay into run.ema_half_life_images (daa/ema.py docstring)
