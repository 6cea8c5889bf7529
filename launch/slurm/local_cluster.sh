#!/usr/bin/env bash
# `make test-slurm`: start a 2-node Slurm cluster on this machine (munge + slurmctld + 2 slurmd, no systemd), submit
# the project's own launch/slurm/train.sbatch for a few CPU training steps on 2 nodes × 1 rank, check the job
# COMPLETED and the ranks formed one group; then lose a node under a running --requeue job and check that Slurm
# requeues it and the rerun resumes from its checkpoint to COMPLETED (docs/RELIABILITY.md); stop every
# daemon. Then a node that is gone for good: the job is resubmitted with --nodes=1 and the run continues on the one
# node left (elastic resume). Recipe: shared/notes/slurm-local.md. SLURM_TEST_REQUEUE=0 skips the node-loss parts,
# SLURM_TEST_ELASTIC=0 the last one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${SLURM_ROOT:-$ROOT/.slurm-local}
PY=${PYTHON:-$ROOT/.venv/bin/python}
TIMEOUT=${SLURM_TEST_TIMEOUT:-300}

if ! command -v slurmctld >/dev/null && [ ! -x /usr/sbin/slurmctld ]; then
  echo "test-slurm: installing slurm + munge (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi

stop() {
  local pids="" p f alive
  [ -n "${FROZEN:-}" ] && { kill -KILL $FROZEN 2>/dev/null || true; }  # frozen by a node-loss test cut short
  for f in "$B"/run/slurmd-*.pid "$B"/run/slurmctld.pid "$B"/run/munged.pid; do
    [ -f "$f" ] && p=$(cat "$f") && kill -0 "$p" 2>/dev/null && kill -TERM "$p" && pids="$pids $p"
  done
  for _ in $(seq 1 100); do
    alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break; sleep 0.1
  done
  [ -n "${alive:-}" ] && kill -KILL $alive 2>/dev/null || true
}
stop   # daemons left behind by an earlier run that was killed (its pid files are about to be removed)
rm -rf "$B"; mkdir -p "$B"/{etc,state,log,run,spool/n1,spool/n2,jobs}
HOST=$(hostname)
export SLURM_CONF=$B/etc/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=daa-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=16817
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool/%n
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd-%n.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
MailProg=/bin/true
# a requeued job becomes eligible cred_expire seconds (default 120) after the requeue and starts at the next pass
# of the main scheduler (every sched_interval, default 60 s): both shortened so that the node-loss test stays short
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.2 Port=17001 CPUs=2 RealMemory=8000 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.3 Port=17002 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
CONF
{ cat /etc/hosts; printf '127.0.0.2 n1\n127.0.0.3 n2\n'; } > "$B/etc/hosts"

trap stop EXIT

install -d -o munge -g munge -m 0755 /run/munge
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
  runuser -u munge -- /usr/sbin/munged
  sleep 0.2; cp /run/munge/munged.pid "$B/run/munged.pid"
fi
# daemons (and every job step) see n1/n2 in a private /etc/hosts; the machine's own file is untouched
in_hosts_ns() { unshare --mount --propagation private bash -c "mount --bind '$B/etc/hosts' /etc/hosts; $1"; }
in_hosts_ns "/usr/sbin/slurmctld -f '$SLURM_CONF' && /usr/sbin/slurmd -f '$SLURM_CONF' -N n1 &&
             /usr/sbin/slurmd -f '$SLURM_CONF' -N n2"
for _ in $(seq 1 150); do [ "$(sinfo -h -N -o '%T' | grep -c '^idle')" = 2 ] && break; sleep 0.2; done
sinfo -N

# the sbatch arguments shared by both jobs: a tiny restorer on synthetic data, 2 nodes × 1 rank
TINY=(--config demo --set data.shards=synthetic --set data.val= --set data.patch_size=16
      --set "model.restorer_args={depth: 2, wf: 8}" --set run.tensorboard=false)
export DAA_NO_TQDM=1

wait_gone() {  # $1 job id, $2 seconds: wait until the job has left the queue (any final state)
  local t0; t0=$(date +%s)
  while squeue -h -j "$1" 2>/dev/null | grep -q .; do
    if [ $(( $(date +%s) - t0 )) -gt "$2" ]; then
      echo "test-slurm: job $1 still queued/running after $2 s"; scontrol show job "$1" | head -n 8; scancel "$1"
      exit 1
    fi
    sleep 0.5
  done
}
job_field() { scontrol show job "$1" 2>/dev/null | grep -oP "\b$2=\K\S+" | head -n1 || true; }
job_out() { grep -v -E "pmix|PMIx|MPI: Cannot" "$B"/jobs/*-"$1".out | tail -n "${2:-15}"; }

RUN=$B/run-demo
J=$(cd "$ROOT" && PYTHON=$PY sbatch --parsable -p debug -N 2 --ntasks-per-node=1 -t 00:10:00 \
      -o "$B/jobs/%x-%j.out" launch/slurm/train.sbatch "${TINY[@]}" --set run.run_dir="$RUN" \
      --set run.total_images=64 --set run.log_every_images=16 --set run.ckpt_every_images=64)
echo "test-slurm: submitted job $J"
wait_gone "$J" "$TIMEOUT"
state=$(job_field "$J" JobState)
job_out "$J"
if [ "$state" != COMPLETED ]; then echo "test-slurm: job $J ended $state"; exit 1; fi
grep -q "world=2 " "$RUN/log.txt" || { echo "test-slurm: ranks did not form one 2-rank group"; exit 1; }
[ -f "$RUN/export/restorer_ema.safetensors" ] || { echo "test-slurm: no export written"; exit 1; }
echo "test-slurm: OK — job $J COMPLETED on 2 nodes, one group of 2 ranks, $(wc -l < "$RUN/stats.jsonl") stats rows"

[ "${SLURM_TEST_REQUEUE:-1}" = 0 ] && exit 0
# ---- node loss under a --requeue job ------------------------------------------------------------------
# train.sbatch carries --requeue. Once the job has written a complete checkpoint, node n2 is lost: its slurmd, the
# job's slurmstepd there and the rank it runs die at once (SIGKILL), and slurmctld is told the node is DOWN, which is
# what it concludes by itself after SlurmdTimeout. Slurm then requeues the job (NODE_FAIL); n2 comes back (a new
# slurmd registers; ReturnToService=2), the job starts again and must resume from its checkpoint and end COMPLETED.
# The job's processes on n1 are frozen (SIGSTOP) for the moment of the loss: otherwise the survivor rank may see the
# dead peer, exit 3 and end the job FAILED before slurmctld hears of the node, a race whose other order is this test.
t_rq=$(date +%s)
RQ=$B/run-requeue
JR=$(cd "$ROOT" && PYTHON=$PY sbatch --parsable -p debug -N 2 --ntasks-per-node=1 -t 00:10:00 --open-mode=append \
       -o "$B/jobs/%x-%j.out" launch/slurm/train.sbatch "${TINY[@]}" --set run.run_dir="$RQ" \
       --set run.total_images=640 --set run.log_every_images=32 --set run.ckpt_every_images=64 \
       --set run.keep_checkpoints=2)
echo "test-slurm: submitted job $JR (--requeue) for node-loss recovery"
job_pids() {  # $1 job id, $2 node: the pids whose environment says they belong to that job on that node
  grep -lzx "SLURM_JOB_ID=$1" /proc/[0-9]*/environ 2>/dev/null | xargs -r grep -lzx "SLURMD_NODENAME=$2" 2>/dev/null \
    | cut -d/ -f3 | tr '\n' ' ' || true
}
wait_checkpoint() {  # $1 job id, $2 run dir: until the run has a complete checkpoint (the job still alive, ≤ 120 s)
  local t0; t0=$(date +%s)
  until ls "$2"/checkpoints/step*/COMPLETE >/dev/null 2>&1; do
    state=$(job_field "$1" JobState)
    case "$state" in PENDING|RUNNING|CONFIGURING) ;; *) echo "test-slurm: job $1 ended $state before a checkpoint"
                                                       job_out "$1"; exit 1;; esac
    if [ $(( $(date +%s) - t0 )) -gt 120 ]; then echo "test-slurm: no checkpoint after 120 s"; scancel "$1"; exit 1; fi
    sleep 0.2
  done
}
wait_checkpoint "$JR" "$RQ"
ckpt=$(basename "$(dirname "$(ls -d "$RQ"/checkpoints/step*/COMPLETE | tail -n1)")")
n1=$(job_pids "$JR" n1); n2=$(job_pids "$JR" n2)
stepd=""; for p in $n2; do
  pp=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || continue
  [ "$(cat "/proc/$pp/comm" 2>/dev/null)" = slurmstepd ] && stepd="$stepd $pp"
done
[ -n "$stepd" ] || { echo "test-slurm: no slurmstepd found for job $JR on n2"; exit 1; }
FROZEN=$n1; kill -STOP $n1 2>/dev/null || true
kill -KILL "$(cat "$B/run/slurmd-n2.pid")" $stepd $n2 2>/dev/null || true
scontrol update NodeName=n2 State=DOWN Reason="node lost (make test-slurm)"
echo "test-slurm: node n2 lost at $(grep -c . "$RQ/stats.jsonl") stats rows, newest complete checkpoint $ckpt"
for _ in $(seq 1 100); do [ "$(job_field "$JR" Restarts)" = 1 ] && break; sleep 0.1; done
[ "$(job_field "$JR" Restarts)" = 1 ] || { echo "test-slurm: job $JR was not requeued after the node loss"
                                           scontrol show job "$JR" | head -n 8; exit 1; }
echo "test-slurm: job $JR requeued by Slurm (Restarts=1); node n2 comes back"
in_hosts_ns "/usr/sbin/slurmd -f '$SLURM_CONF' -N n2"   # the node comes back
wait_gone "$JR" 150   # ≈ 10 s until the requeued job may start, ≈ 20 s to finish
state=$(job_field "$JR" JobState)
job_out "$JR" 8
[ "$state" = COMPLETED ] || { echo "test-slurm: requeued job $JR ended $state"; exit 1; }
resumed=$(grep -oP "resumed from \Kstep\d+: [\d,]+ images" "$RQ/log.txt" | tail -n1)
[ -n "$resumed" ] && [ "${resumed#*: }" != "0 images" ] \
  || { echo "test-slurm: the requeued run did not resume from a checkpoint"; tail -n 5 "$RQ/log.txt"; exit 1; }
grep -q "restart=1" "$B"/jobs/*-"$JR".out || { echo "test-slurm: no second start in the job output"; exit 1; }
grep -q "finished: 640 images" "$RQ/log.txt" || { echo "test-slurm: the requeued run did not finish"; exit 1; }
[ -f "$RQ/export/restorer_ema.safetensors" ] || { echo "test-slurm: no export after the requeue"; exit 1; }
echo "test-slurm: OK — node n2 lost under job $JR after $ckpt; Slurm requeued it (Restarts=1); the rerun resumed from" \
     "$resumed and COMPLETED with its export ($(( $(date +%s) - t_rq )) s)"

[ "${SLURM_TEST_ELASTIC:-1}" = 0 ] && exit 0
# ---- a node gone for good: resubmitted with --nodes=1, the run continues on one rank ------------------------------
# A 2-node job (no requeue) loses n2 after its first complete checkpoint and ends; n2 stays down. What a Slurm user
# does then: submit the same command with -N 1. The run must resume on 1 rank from the 2-rank checkpoint (universal
# conversion, grad_accum 1 → 2) and end COMPLETED with all 640 images.
t_el=$(date +%s)
EL=$B/run-elastic
EARGS=("${TINY[@]}" --set run.run_dir="$EL" --set run.total_images=640 --set run.log_every_images=32
       --set run.ckpt_every_images=64 --set run.keep_checkpoints=2)
JE=$(cd "$ROOT" && PYTHON=$PY sbatch --parsable --no-requeue -p debug -N 2 --ntasks-per-node=1 -t 00:10:00 \
       -o "$B/jobs/%x-%j.out" launch/slurm/train.sbatch "${EARGS[@]}")
echo "test-slurm: submitted job $JE (2 nodes, no requeue) for the lost-for-good case"
wait_checkpoint "$JE" "$EL"
n2=$(job_pids "$JE" n2)
kill -KILL "$(cat "$B/run/slurmd-n2.pid")" $n2 2>/dev/null || true
scontrol update NodeName=n2 State=DOWN Reason="node gone (make test-slurm)"
wait_gone "$JE" 120
echo "test-slurm: node n2 gone; job $JE ended $(job_field "$JE" JobState); resubmitting with -N 1"
JE2=$(cd "$ROOT" && PYTHON=$PY sbatch --parsable -p debug -N 1 --ntasks-per-node=1 -t 00:10:00 \
        -o "$B/jobs/%x-%j.out" launch/slurm/train.sbatch "${EARGS[@]}")
wait_gone "$JE2" "$TIMEOUT"
state=$(job_field "$JE2" JobState)
job_out "$JE2" 6
[ "$state" = COMPLETED ] || { echo "test-slurm: resubmitted job $JE2 ended $state"; exit 1; }
el=$(grep -oP "elastic resume: \Kstep\d+ was written by 2 rank\(s\), continuing on 1 .*" "$EL/log.txt" | tail -n1)
[ -n "$el" ] || { echo "test-slurm: the resubmitted run did not resume on 1 rank"; tail -n 5 "$EL/log.txt"; exit 1; }
grep -q "finished: 640 images" "$EL/log.txt" || { echo "test-slurm: the resubmitted run did not finish"; exit 1; }
[ -f "$EL/export/restorer_ema.safetensors" ] || { echo "test-slurm: no export after the resubmission"; exit 1; }
echo "test-slurm: OK — node n2 gone under job $JE; job $JE2 (-N 1) resumed $el and COMPLETED" \
     "($(( $(date +%s) - t_el )) s)"
