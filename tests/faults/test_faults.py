"""The reliability suite as tests: every case runs the real entry points (torchrun + launch/train.py on 2 CPU ranks
with ZeRO-2, the CLIs of data_shards.write, daa.restore, daa.evaluate and launch.bench.kernels) as subprocesses on tiny
models and data, injects a fault, and checks what the product guarantees (docs/RELIABILITY.md).

    make test-faults                                   # the whole suite (≤ 10 min on 2 CPU cores) + its table
    pytest tests/faults -m faults -k sigkill           # one group
"""
from __future__ import annotations

import pytest
from cases_data import case_corrupt_5, case_corrupt_100, case_http, case_numeric
from cases_elastic import case_elastic, case_elastic_shards
from cases_input import case_bad_input, case_disk_full
from cases_remote import case_hostile_manifest, case_pipe_hang, case_range, case_trickle
from cases_runs import (
    case_accum_nan_resume,
    case_agent_kills,
    case_half_written,
    case_rank_dies,
    case_rank_stalls,
    case_sigkill,
    case_sigterm,
    case_sigterm_workers,
    case_startup_death,
)

FULL = pytest.mark.faults
FAST = pytest.mark.faults_fast


@FULL
def test_sigkill_mid_checkpoint(ctx, record):
    record(case_sigkill(ctx, 0, True), "SIGKILL mid-checkpoint")


@FULL
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill(ctx, record, seed):
    record(case_sigkill(ctx, seed, False), f"SIGKILL seed {seed}")


@FULL
def test_sigterm(ctx, record):
    record(case_sigterm(ctx), "SIGTERM")


@FULL
def test_sigterm_dataloader_workers(ctx, record):
    record(case_sigterm_workers(ctx), "SIGTERM, DataLoader workers")


@FULL
def test_accum_nan_then_sigkill(ctx, record):
    record(case_accum_nan_resume(ctx), "grad_accum + NaN + SIGKILL")


@FULL
@pytest.mark.parametrize("stage, w_from, w_to", [(2, 2, 1), (2, 1, 2), (3, 2, 1), (3, 1, 2), (0, 2, 1), (1, 2, 1)])
def test_elastic_resume(ctx, record, stage, w_from, w_to):
    record(case_elastic(ctx, stage, w_from, w_to), f"elastic ZeRO-{stage} {w_from}→{w_to}")


@FULL
def test_elastic_resume_real_shards(ctx, record):
    record(case_elastic_shards(ctx), "elastic, real shards")


@FULL
def test_half_written_checkpoint(ctx, record):
    record(case_half_written(ctx), "half-written")


@FULL
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_rank_dies(ctx, record, how):
    record(case_rank_dies(ctx, how), f"rank {how}")


@FULL
def test_rank_stalls_outside_collectives(ctx, record):
    record(case_rank_stalls(ctx), "rank stalls")


@FULL
def test_torchrun_agent_killed(ctx, record):
    record(case_agent_kills(ctx), "torchrun")


@FULL
@pytest.mark.parametrize("how", ["joined", "never"])
def test_rank_dies_at_startup(ctx, record, how):
    record(case_startup_death(ctx, how), f"start-up, {how}")


@FULL
@FAST
def test_corrupt_5_percent(ctx, record):
    record(case_corrupt_5(ctx), "corrupt 5 %")


@FULL
@FAST
def test_corrupt_100_percent(ctx, record):
    record(case_corrupt_100(ctx), "corrupt 100 %")


@FULL
def test_shards_over_http(ctx, record):
    record(case_http(ctx), "HTTP shards")


@FULL
def test_trickling_shard(ctx, record):
    record(case_trickle(ctx), "trickle")


@FULL
def test_range_resume(ctx, record):
    record(case_range(ctx), "Range resume")


@FULL
def test_hostile_manifest(ctx, record):
    record(case_hostile_manifest(ctx), "hostile manifest")


@FULL
def test_hung_compound_pipe(ctx, record):
    record(case_pipe_hang(ctx), "hung pipe:")


@pytest.mark.parametrize("where, restorer", [
    pytest.param("batch_nan", "dncnn", marks=[FULL, FAST]),
    pytest.param("loss_inf", "unet", marks=FULL),
    pytest.param("batch_inf", "unet", marks=FULL),
])
def test_numeric(ctx, record, where, restorer):
    record(case_numeric(ctx, where, restorer), f"numeric {where} {restorer}")


@pytest.mark.parametrize("quick", [pytest.param(True, marks=FAST, id="third"),
                                   pytest.param(False, marks=FULL, id="all")])
def test_bad_input(ctx, record, quick):
    record(case_bad_input(ctx, quick), "bad input")


@FULL
def test_disk_full_during_checkpoint(ctx, record):
    record(case_disk_full(ctx), "disk full")
