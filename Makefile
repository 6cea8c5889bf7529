# daa — the two commands a newcomer needs are `make demo` and `make test`; both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU boxes must never pull a multi-GB CUDA build: pin the CPU wheel. GPU users: `make install TORCH=` with
# nothing (keeps whatever torch the venv already has) or `TORCH="torch==X --index-url ..."`.
TORCH ?= torch==2.13.0
# Same triton the CUDA build of torch 2.13 pins, so CPU (interpreter) and GPU runs use one version; it must lie in
# setup.py's triton range (tests/test_kernels_aot.py checks).
TRITON ?= triton==3.7.1
# SYSTEM_SITE=1 lets the venv see a cluster-provided torch (module load / conda) instead of installing one.
SYSTEM_SITE ?= 0
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.torch_ext

# the camera-noise targets' statistics next to real noisy photographs (shared/data; rows whose folder is missing are
# left out): docs/results/noise_stats.md
SHARED ?= $(CURDIR)/../shared/data
NOISE_STATS = $(if $(wildcard $(SHARED)/real_noise_polyu),--pairs "PolyU (real, camera JPEG)=$(SHARED)/real_noise_polyu") \
	$(if $(wildcard $(SHARED)/real_degraded_samples/denoising),--noisy "SIDD crops (real, sRGB PNG)=$(SHARED)/real_degraded_samples/denoising") \
	--synthetic "AWGN σ 25/255 (source)=denoise:source:sigma=0.098" --synthetic "camera noise + JPEG (noise)=denoise:target" \
	--synthetic "calibrated camera noise (camnoise)=denoise:target:profile=sidd" \
	--synthetic "camera noise + JPEG, camera reference (noise, round 2)=denoise:target:reference=camera"

.PHONY: install gpu-wheels gpu-rehearsal wheel-check test test-faults test-slurm lint bench bench-step data demo demo-quick reproduce reproduce-verdicts reproduce-quick results clean-venv

$(VENV)/.installed: setup.py pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(if $(filter 1,$(SYSTEM_SITE)),--system-site-packages) $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	    echo "install: using the torch already importable: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif [ -n "$(TORCH)" ]; then \
	    echo "install: $(TORCH)"; $(PY) -m pip install -q $(TORCH) numpy; \
	else echo "install: TORCH is empty and no torch is importable; install one or set TORCH=" >&2; exit 1; fi
	@if $(PY) -c "import torch, sys; sys.exit(torch.version.cuda is not None)"; then \
	    $(PY) -m pip install -q numpy $(TRITON); fi
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

# the fast groups: everything but the slow reliability cases (those are make test-faults)
test: install
	$(PY) -m pytest -q tests -m "not faults or faults_fast"

# build the wheel, install it into a fresh venv outside the checkout, run daa-train --dry-run and daa-restore --help
wheel-check: install
	PY=$(PY) bash .ci/wheel_check.sh

lint: install
	$(PY) -m ruff check daa kernels data_shards launch tests

bench: install
	$(PY) -m launch.bench.kernels
	$(PY) -m launch.bench.kernels.group_norm_silu

bench-step: install
	$(PY) launch/bench/step.py
	$(PY) launch/bench/zero_memory.py

# the offline photo corpus (photos bundled in pip wheels + Debian wallpaper photos where apt works)
data: install
	$(PY) launch/studies/photo_corpus.py --out .data/photos

# the main job: shards from the offline corpus, baseline vs DAA on 2 CPU ranks, a PSNR table and figures
demo: install
	$(PY) launch/studies/demo.py

demo-quick: install
	$(PY) launch/studies/demo.py --quick --out runs/demo-quick

# how much fine detail each final restorer keeps, per photo of the test split (docs/RESULTS.md §5)
DETAIL_CAMNOISE = --task camnoise --split test_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 3 (camnoise, camera reference), test split"
DETAIL_NOISE = --task noise --split test_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 2 (noise, camera reference), test split"
DETAIL_CAMNOISE_VAL = --task camnoise --split val_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 3 (camnoise, camera reference), validation split"
NOISE_ARMS = baseline-ema,daa-a3-ema,daa-a3-ema-dlr1e-4,no-tricks-a3-ema-dlr1e-4,cs-only-a3-ema-dlr1e-4
DETAIL_NOISE_ARMS = --task noise --split val_cam --seeds 0 --arms $(NOISE_ARMS),detach-neg-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising (noise, camera reference): every DAA variant, validation split, seed 0"
DETAIL_CAMDARK = --task camdark --split test_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 4 (camdark, camera reference), test split"
DETAIL_CAMDARK_FRESH = --task camdark --split fresh_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 5 (camdark, camera reference), test split: the fresh pool F"
DETAIL_CAMDARK_G = --task camdark --split fresh2_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 6 (camdark, camera reference), test split: the fresh pool G"
DETAIL_CAMDARK_H = --task camdark --split fresh3_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,oracle-ema-cam \
	--title "Denoising round 7 (camdark, camera reference), test split: the fresh pool H"
DETAIL_CAMDARK_EARLY = --task camdark --split valpool_cam --arms baseline-ema,daa-a3-ema-dlr1e-4,daa-a3-ema-dlr1e-4-early \
	--title "Exploration 1 (camdark, camera reference): the noise loss in the first half only, validation split"
DETAIL_RAIN = --task rain --split test --arms baseline,daa-a3,oracle --title "Deraining, test split"
# the noise loss's pull over training: a DAA run retrained with frequent checkpoints, each diagnosed (RESULTS §5)
TRAJECTORY_RAIN = --study rain --arm daa-a3 --every 2000
TRAJECTORY_CAMDARK = --study camdark-r4-val --arm daa-a3-ema-dlr1e-4 --every 6000

# DAA-mini: the paper's claim at CPU scale (every study of the plan, ~14 h on 2 cores; resumable: a rerun
# trains only what is missing). Tables and plots go to docs/results/; docs/RESULTS.md discusses them.
reproduce: install
	$(PY) launch/studies/photo_corpus.py --out .data/photos
	$(PY) -m data_shards.noise_stats $(NOISE_STATS) --json docs/results/noise_stats.json > docs/results/noise_stats.md
	$(PY) launch/studies/daa_mini.py --plan launch/studies/plans/daa_mini.yaml --report-dir docs/results
	$(PY) launch/studies/daa_mini_headline.py --plan launch/studies/plans/daa_mini.yaml --results docs/results
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMDARK_H) --md docs/results/detail.md
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMDARK_G) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMDARK_EARLY) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMDARK_FRESH) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMDARK) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMNOISE) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_NOISE) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_CAMNOISE_VAL) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_NOISE_ARMS) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_detail.py $(DETAIL_RAIN) --md docs/results/detail.md --append
	$(PY) launch/studies/daa_mini_trajectory.py $(TRAJECTORY_RAIN) --seed 0 --md docs/results/trajectory.md
	$(PY) launch/studies/daa_mini_trajectory.py $(TRAJECTORY_RAIN) --seed 1 --md docs/results/trajectory.md --append
	$(PY) launch/studies/daa_mini_trajectory.py $(TRAJECTORY_CAMDARK) --seed 0 --md docs/results/trajectory.md --append
	$(PY) launch/studies/daa_mini_trajectory.py $(TRAJECTORY_CAMDARK) --seed 1 --md docs/results/trajectory.md --append

# the headline table (docs/RESULTS.md, README.md) and tables.md from the committed docs/results/summary.json: the
# verdict rule and the bootstrap intervals applied in code, no training (seconds)
results: install
	$(PY) launch/studies/daa_mini_headline.py --plan launch/studies/plans/daa_mini.yaml --results docs/results

# only the test studies (and the runs they reuse): the verdict tables, written to runs/daa_mini/summary.md
reproduce-verdicts: install
	$(PY) launch/studies/photo_corpus.py --out .data/photos
	$(PY) launch/studies/daa_mini.py --plan launch/studies/plans/daa_mini.yaml --studies rain,noise,noise-r2,camnoise-r3,camdark-r4,camdark-r5,camdark-r6,camdark-r7,camdark-r7-pooled

reproduce-quick: install
	$(PY) launch/studies/daa_mini.py --quick

# the reliability suite: preemption (SIGKILL/SIGTERM), a dying rank, corrupt data, NaNs, bad input (≤ 10 min)
test-faults: install
	$(PY) -m pytest -q -p no:cacheprovider tests/faults -m faults --faults-report runs/faults.md

# a real 2-node Slurm cluster on this machine: submits launch/slurm/train.sbatch for a few CPU steps, then loses a
# node under a --requeue job and checks it is requeued and resumes from its checkpoint (SLURM_TEST_REQUEUE=0 skips)
test-slurm: install
	PYTHON=$(CURDIR)/$(PY) bash launch/slurm/local_cluster.sh

# the wheels launch/bench/gpu_check.sh needs and the GPU device image lacks (deepspeed built with no ops, webdataset,
# pydantic, ...) for its CPython 3.12, into .whl/ (ignored; carry it to the device). Needs pip and the network only.
gpu-wheels:
	PYTHON=$(PYTHON) bash launch/bench/gpu_wheels.sh

# the GPU script's start on a bare device image, rehearsed on CPU in fresh venvs under runs/gpu-rehearsal (no GPU;
# several minutes, most of it installing torch, OpenCV and scipy into the stand-in venv): docs/benchmarks/README.md
gpu-rehearsal: gpu-wheels
	PYTHON=$(PYTHON) bash launch/bench/gpu_rehearsal.sh

clean-venv:
	rm -rf $(VENV)
