#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine (munged, slurmctld, slurmd) for the
# tests of weft's Slurm step operator. Installs slurm-wlm and munge if they are missing
# (Debian/Ubuntu, as root). Idempotent: what already runs is left alone.
#
#   WEFT_SLURM_DIR   state, logs and pidfiles (default /tmp/weft-slurm)
#   WEFT_SLURM_CPUS  CPUs the node advertises (default 8, so that parallel tests fit)
#
# Variables of our own are not named SLURM_*: Slurm reads those itself.
set -euo pipefail

dir=$(realpath -m "${WEFT_SLURM_DIR:-/tmp/weft-slurm}")
cpus=${WEFT_SLURM_CPUS:-8}
conf=/etc/slurm/slurm.conf

say() { echo "[slurm-up] $*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
fail() { say "$1"; tail -n 20 "$dir"/log/*.log >&2 2>/dev/null || true; exit 1; }

if ! command -v slurmctld >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p "$dir"/{state,spool,log}

# munge: the package makes a key; make one if it did not.
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge /var/lib/munge /var/log/munge
if ! alive /run/munge/munged.pid; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null || fail "munge does not work"

memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
memory=$(( memory > 1024 ? memory - 512 : memory ))
override=""
[ "$cpus" -gt "$(nproc)" ] && override="SlurmdParameters=config_overrides"
wanted=$(cat <<CONF
# written by weft's scripts/slurm-up.sh
ClusterName=weft
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdTimeout=60
$override
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
)
mkdir -p /etc/slurm
stop() {
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$1"
}
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  echo "$wanted" > "$conf"
  # A new configuration needs the daemons restarted.
  stop "$dir/slurmd.pid"
  stop "$dir/slurmctld.pid"
fi

# The daemons start from `/`: a folder of the caller's (a clone that is later deleted) would
# be their working folder, and every job step would then warn that it cannot find it.
cd /
if ! alive "$dir/slurmctld.pid"; then
  nohup slurmctld -D >"$dir/log/slurmctld.out" 2>&1 &
  echo $! > "$dir/slurmctld.pid"
fi
for _ in $(seq 100); do
  alive "$dir/slurmctld.pid" || fail "slurmctld exited"
  timeout 5 scontrol ping 2>/dev/null | grep -q UP && break
  sleep 0.1
done
if ! alive "$dir/slurmd.pid"; then
  nohup slurmd -D -N localhost >"$dir/log/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.pid"
fi
deadline=$((SECONDS + 60))
state=""
while [ $SECONDS -lt $deadline ]; do
  alive "$dir/slurmd.pid" || fail "slurmd exited"
  state=$(timeout 5 sinfo -h -n localhost -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) say "node localhost is $state"; exit 0;; esac
  case "$state" in down*|drain*) scontrol update nodename=localhost state=resume 2>/dev/null || true;; esac
  sleep 0.2
done
fail "the node did not become usable (state: $state)"
