#!/usr/bin/env bash
# `make test-slurm`: start a 2-node Slurm cluster on this machine (munge + slurmctld + 2 slurmd, no systemd), submit
# the project's own launch/slurm/train.sbatch for a few CPU training steps on 2 nodes × 1 rank, check the job
# COMPLETED and the ranks formed one group, and stop every daemon. Recipe: shared/notes/slurm-local.md.
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
SlurmdParameters=config_overrides
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.2 Port=17001 CPUs=2 RealMemory=8000 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.3 Port=17002 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
CONF
{ cat /etc/hosts; printf '127.0.0.2 n1\n127.0.0.3 n2\n'; } > "$B/etc/hosts"

stop() {
  local pids="" p f alive
  for f in "$B"/run/slurmd-*.pid "$B"/run/slurmctld.pid "$B"/run/munged.pid; do
    [ -f "$f" ] && p=$(cat "$f") && kill -0 "$p" 2>/dev/null && kill -TERM "$p" && pids="$pids $p"
  done
  for _ in $(seq 1 100); do
    alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break; sleep 0.1
  done
  [ -n "${alive:-}" ] && kill -KILL $alive 2>/dev/null || true
}
trap stop EXIT

install -d -o munge -g munge -m 0755 /run/munge
if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
  runuser -u munge -- /usr/sbin/munged
  sleep 0.2; cp /run/munge/munged.pid "$B/run/munged.pid"
fi
# daemons (and every job step) see n1/n2 in a private /etc/hosts; the machine's own file is untouched
unshare --mount --propagation private bash -c "
  mount --bind '$B/etc/hosts' /etc/hosts
  /usr/sbin/slurmctld -f '$SLURM_CONF'
  /usr/sbin/slurmd -f '$SLURM_CONF' -N n1
  /usr/sbin/slurmd -f '$SLURM_CONF' -N n2"
for _ in $(seq 1 150); do [ "$(sinfo -h -N -o '%T' | grep -c '^idle')" = 2 ] && break; sleep 0.2; done
sinfo -N

RUN=$B/run-demo
J=$(cd "$ROOT" && PYTHON=$PY sbatch --parsable -p debug -N 2 --ntasks-per-node=1 -t 00:10:00 \
      -o "$B/jobs/%x-%j.out" launch/slurm/train.sbatch --config demo \
      --set data.shards=synthetic --set data.val= --set data.patch_size=16 --set run.run_dir="$RUN" \
      --set run.total_images=64 --set run.log_every_images=16 --set run.ckpt_every_images=64 \
      --set "model.restorer_args={depth: 2, wf: 8}" --set run.tensorboard=false)
echo "test-slurm: submitted job $J"
t0=$(date +%s)
while squeue -h -j "$J" 2>/dev/null | grep -q .; do
  if [ $(( $(date +%s) - t0 )) -gt "$TIMEOUT" ]; then echo "test-slurm: job $J still queued/running after ${TIMEOUT}s"; scancel "$J"; exit 1; fi
  sleep 0.5
done
state=$(scontrol show job "$J" | grep -oP 'JobState=\K\S+')
cat "$B"/jobs/*-"$J".out | grep -v -E "pmix|PMIx|MPI: Cannot" | tail -n 15
if [ "$state" != COMPLETED ]; then echo "test-slurm: job $J ended $state"; exit 1; fi
grep -q "world=2 " "$RUN/log.txt" || { echo "test-slurm: ranks did not form one 2-rank group"; exit 1; }
[ -f "$RUN/export/restorer_ema.safetensors" ] || { echo "test-slurm: no export written"; exit 1; }
echo "test-slurm: OK — job $J COMPLETED on 2 nodes, one group of 2 ranks, $(wc -l < "$RUN/stats.jsonl") stats rows"
