#!/usr/bin/env bash
# A real single-node SLURM on localhost for the tests: Debian's slurm-wlm and munge, no accounting database.
#   slurm_cluster.sh start   install (if missing), write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   slurm_cluster.sh stop    stop the daemons this script started
# Exit 3 means "SLURM cannot be had here" (not root, no apt, a foreign slurm.conf): the tests skip with the reason.
# The config must sit at the default path: the executor's job step strips SLURM_* variables (SLURM_CONF among
# them) before its inner srun, so a config elsewhere is not found inside jobs.
set -euo pipefail

STATE=${TRANSFERBENCH_SLURM_STATE:-/tmp/transferbench-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by transferbench tests/workflow/slurm_cluster.sh"

cannot() { echo "SLURM unavailable: $*" >&2; exit 3; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || cannot "not root, cannot apt-get install slurm-wlm munge"
    command -v apt-get >/dev/null || cannot "no apt-get to install slurm-wlm and munge"
    echo "installing slurm-wlm and munge (Debian packages)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
        || cannot "apt-get install slurm-wlm munge failed"
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        cannot "$CONF exists and was not written by these tests; not touching a real cluster's config"
    fi
    local host mem
    host=$(hostname -s)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # half the machine: jobs share it with pytest
    mkdir -p "$STATE"/{state,spool,log} /etc/slurm
    cat > "$CONF" <<EOF
$MARK
ClusterName=transferbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue answers for finished jobs as long as they stay in slurmctld's memory (the plugin's squeue status)
MinJobAge=3600
KillWait=30
ReturnToService=2
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { pgrep -x "$1" >/dev/null; }

start() {
    [ "$(id -u)" = 0 ] || cannot "the daemons run as root in this test setup; not root"
    install
    write_conf
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
        runuser -u munge -- /usr/sbin/munged
    fi
    running slurmctld || { slurmctld && touch "$STATE/started-slurmctld"; }
    running slurmd || { slurmd && touch "$STATE/started-slurmd"; }
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "SLURM up: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
            return
        fi
        sleep 1
    done
    echo "SLURM did not come up within 60 s; see $STATE/log" >&2
    exit 1
}

stop() {
    for d in slurmd slurmctld; do
        if [ -f "$STATE/started-$d" ]; then pkill -x "$d" || true; rm -f "$STATE/started-$d"; fi
    done
}

"${1:?usage: slurm_cluster.sh start|stop}"
