"""The carried wheels on the GPU device (kernels/gpu_check_common.sh) and the import check of what the GPU scripts run.

    python launch/bench/gpu_site.py pick .whl     # the wheels to install: those this python lacks or has older
    python launch/bench/gpu_site.py imports       # import every module the GPU scripts need, print versions

`pick` prints one wheel path a line. A wheel whose distribution this python already has at the same or a newer version
is left out (typing-extensions is carried only as a floor for pydantic: an image with a newer one keeps its own), and
`pick` says so on stderr. `imports` prints `module version` lines and exits 1 naming every module that failed.
Standard library only (plus `packaging` where present), so it runs before anything is installed.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import re
import sys
import traceback
from pathlib import Path

# every module launch/bench/gpu_check.sh and kernels/gpu_check.sh reach: third-party first (the image's and the
# carried ones), then the project's entry points the scripts run
THIRD_PARTY = ("torch", "triton", "numpy", "yaml", "pytest", "cv2", "skimage", "h5py", "safetensors", "tensorboard",
               "tqdm", "einops", "msgpack", "psutil", "packaging", "cpuinfo", "ninja", "PIL", "scipy",
               "typing_extensions", "hjson", "annotated_types", "typing_inspection", "pydantic_core", "pydantic",
               "braceexpand", "webdataset", "deepspeed")
PROJECT = ("daa", "daa.config", "daa.models", "daa.objective", "daa.official", "daa.training.trainer",
           "daa.training.levers", "data_shards", "kernels", "kernels.conditions", "kernels.noise_mse",
           "kernels.group_norm_silu", "launch.bench.kernels", "launch.bench.kernels.group_norm_silu", "launch.harness",
           "launch.bench.step_runners", "launch.bench.step", "launch.bench.profile_gpu")
DIST = {"yaml": "pyyaml", "cv2": "opencv-python-headless", "skimage": "scikit-image", "cpuinfo": "py-cpuinfo",
        "PIL": "pillow"}
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def _version_key(v: str):
    try:
        from packaging.version import Version

        return Version(v)
    except Exception:  # noqa: BLE001 - no packaging, or a version it cannot parse: compare the numeric parts
        return tuple(int(x) for x in re.findall(r"\d+", v))


def pick(folder: Path) -> list[Path]:
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"gpu_site: no wheels in {folder} (make gpu-wheels)")
    out = []
    for w in wheels:
        m = _WHEEL.match(w.name)
        if not m:
            raise SystemExit(f"gpu_site: not a wheel file name: {w.name}")
        name, version = m["name"], m["version"]
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have is not None and _version_key(have) >= _version_key(version):
            print(f"gpu_site: {name} {have} already here (carried {version}): kept", file=sys.stderr)
            continue
        out.append(w)
    return out


def _dist_version(module: str, mod) -> str:
    for name in (DIST.get(module), module.replace("_", "-"), module):
        if name:
            try:
                return md.version(name)
            except md.PackageNotFoundError:
                pass
    return str(getattr(mod, "__version__", "?"))


def imports(modules=THIRD_PARTY + PROJECT) -> int:
    failed = []
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - report every failing module, not only the first
            failed.append(name)
            print(f"{name} FAILED: {type(e).__name__}: {e}")
            traceback.print_exc(limit=-3, file=sys.stdout)
            continue
        if name in THIRD_PARTY:
            where = Path(getattr(mod, "__file__", "") or "?").parent
            print(f"{name} {_dist_version(name, mod)} ({where})")
    print(f"imports: {len(modules) - len(failed)}/{len(modules)} ok" + (f"; failed: {' '.join(failed)}" if failed
                                                                          else ""))
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pick"] and len(argv) == 2:
        for w in pick(Path(argv[1])):
            print(w)
        return 0
    if argv == ["imports"]:
        return imports()
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
