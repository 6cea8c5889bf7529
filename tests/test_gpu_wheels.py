"""The carried wheels of the GPU scripts (make gpu-wheels): the pin list, which wheels the device installs, and the
install itself as kernels/gpu_check_common.sh does it (pip --no-index --no-deps --target + PYTHONPATH), on a wheel
built here. The full rehearsal (fresh venvs, the real wheels, a Trainer step) is `make gpu-rehearsal`."""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "launch" / "bench"))

import gpu_site  # noqa: E402


def _wheel(folder: Path, dist: str, version: str, module: str, body: str) -> Path:
    """A minimal pure-Python wheel (what pip needs: the module, METADATA, WHEEL, RECORD)."""
    info = f"{dist}-{version}.dist-info"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    files = {f"{module}/__init__.py": body,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_pin_list_one_exact_version_each():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "launch/bench/gpu_wheels.txt").read_text().splitlines()]
    pins = [ln for ln in lines if ln]
    names = []
    for p in pins:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.]*)", p)
        assert m, f"not name==version: {p!r}"
        names.append(m[1].lower().replace("_", "-"))
    assert len(names) == len(set(names)), "two versions of one package stop the device's whole install"
    # what the GPU image lacks (its published package list) and the GPU scripts import
    assert {"deepspeed", "webdataset", "braceexpand", "hjson", "pydantic", "pydantic-core"} <= set(names)


def test_pick_skips_what_this_python_has_at_that_version_or_newer(tmp_path, capsys):
    have = md.version("pytest")
    old = _wheel(tmp_path, "pytest", "0.1", "pytest_stub", "")
    new = _wheel(tmp_path, "pytest", "999.0", "pytest_stub", "")
    absent = _wheel(tmp_path, "daa_absent_probe", "1.0", "daa_absent_probe", "")
    assert gpu_site.pick(tmp_path) == sorted([absent, new])
    assert f"pytest {have} already here (carried 0.1): kept" in capsys.readouterr().err
    assert old.exists()


def test_pick_rejects_an_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no wheels in"):
        gpu_site.pick(tmp_path)


def test_imports_names_every_failing_module(capsys):
    assert gpu_site.imports(("json", "daa_no_such_module_1", "daa_no_such_module_2")) == 1
    out = capsys.readouterr().out
    assert "daa_no_such_module_1 FAILED: ModuleNotFoundError" in out
    assert "imports: 1/3 ok; failed: daa_no_such_module_1 daa_no_such_module_2" in out


def test_carry_wheels_installs_into_the_site_and_sets_pythonpath(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    _wheel(wheels, "daa_carry_probe", "1.0", "daa_carry_probe", "VALUE = 7\n")
    site = tmp_path / "site"
    script = (". kernels/gpu_check_common.sh && carry_wheels && "
              '"$PY" -c "import daa_carry_probe, daa, sys; print(daa_carry_probe.VALUE, daa_carry_probe.__file__)"')
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_WHEELS": str(wheels), "GPU_SITE": str(site),
           "OUT": str(tmp_path / "out"), "CAP_DEFAULT": "60", "HOME": str(tmp_path)}
    r = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "carried wheels: installed 1 of" in r.stdout
    assert f"7 {site}/daa_carry_probe/__init__.py" in r.stdout


def test_carry_wheels_without_the_folder_only_puts_the_repo_on_the_path(tmp_path):
    script = '. kernels/gpu_check_common.sh && carry_wheels && echo "PP=$PYTHONPATH"'
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_WHEELS": str(tmp_path / "none"),
           "OUT": str(tmp_path / "out"), "CAP_DEFAULT": "60"}
    r = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "carried wheels: none" in r.stdout and f"PP={REPO}\n" in r.stdout
