"""Microbenchmarks of the fused kernels (`python -m launch.bench.kernels`, `make bench`; what is measured: run.py).

A checkout tool: it shares launch/harness.py with the other benchmarks and is not part of the installed wheel."""
from .run import CSV_FIELDS, main  # noqa: F401
from .timing import _DEV_NOTES, _MARKER, _device_events, device_times, per_call_ms  # noqa: F401
