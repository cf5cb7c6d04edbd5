#!/usr/bin/env bash
# A real single-node SLURM cluster for CI, without systemd: Debian's slurm packages, munge and a
# fake GPU GRES. Usage (as root):
#
#   .ci/slurm/cluster.sh start    install what is missing, start munged, slurmctld, slurmd;
#                                 wait until the node is idle (idempotent: a running cluster
#                                 started by this script is left as it is)
#   .ci/slurm/cluster.sh stop     cancel its jobs, stop exactly the daemons it started (by PID)
#   .ci/slurm/cluster.sh status   exit 0 when the cluster started by this script answers
#
# slurm.conf and gres.conf go to /etc/slurm, where every client (and the `srun` that the plugin
# runs inside each job, with SLURM_* variables cleared) looks; an existing configuration not
# written by this script is never overwritten, and `stop` removes ours. The munge key and
# socket, spool, state, PIDs and logs live in the state directory ($DFAT_SLURM_STATE), so a
# machine's own munge installation is not touched.
#
# Job status: there is no accounting database (no slurmdbd, no MariaDB). The Snakemake SLURM
# plugin is run with `--slurm-status-command squeue`; MinJobAge=600 keeps finished jobs in the
# controller for 10 minutes, so squeue still reports their final state and
# `scontrol show job` their requested resources. This needs 42 packages instead of 93 and two
# daemons fewer, with no database to initialise and register before jobs can run.
# Caution: without accounting `sacct` exists but fails, and the plugin's default status
# command (sacct) then waits forever; bound every run with `timeout -s KILL`.
set -euo pipefail

STATE=${DFAT_SLURM_STATE:-/run/dfat-slurm}
CONF_DIR=/etc/slurm
MARKER="# Written by .ci/slurm/cluster.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
FAKE_GPU=${DFAT_SLURM_FAKE_GPU:-/dev/dfat-fakegpu0}
MIN_JOB_AGE=600
WAIT_IDLE_S=${DFAT_SLURM_WAIT_S:-60}
# Daemons in start order (stopped in reverse).
DAEMONS=(munged slurmctld slurmd)

log() { echo "[slurm-ci] $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() { cat "$STATE/pids/$1" 2>/dev/null || true; }

# True when process $1 exists; a zombie (exited, not yet reaped) counts as gone.
running() {
    local stat
    [[ -n "$1" ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ "${stat##*) }" != Z* ]]
}

# True when the PID recorded for daemon $1 runs that program (not a reused PID).
alive() {
    local pid
    pid=$(pid_of "$1")
    running "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]]
}

is_ours() { [[ -f "$1" ]] && head -n1 "$1" | grep -qF "$MARKER"; }

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
    log "installing ${missing[*]}"
    # The packages' maintainer scripts must not start system-wide services: we start our own.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$STATE/apt.log" 2>&1 || rc=$?
    [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || { tail -n 30 "$STATE/apt.log" >&2; die "apt-get failed (log: $STATE/apt.log)"; }
}

write_config() {
    local cpus mem_kb real_mb
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # A little under the detected memory, so slurmd never reports less than configured.
    real_mb=$((mem_kb * 9 / 10 / 1024))
    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER: a single-node CI cluster (no systemd, no accounting).
ClusterName=dfatci
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket.2
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups in a container: track processes by parentage, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# FIFO: a job starts as soon as it is submitted if the node has room.
SchedulerType=sched/builtin
DefMemPerCPU=500
# Finished jobs stay visible to squeue / scontrol for 10 minutes (the status checks rely on it).
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb Gres=gpu:fake:1 State=UNKNOWN
PartitionName=dfat Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
# One fake GPU: a character device (like /dev/null), enough for SLURM to schedule --gpus.
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=$FAKE_GPU
EOF
}

# Start daemon $1 in the foreground of its own session (command: remaining arguments) and
# record its PID; the output goes to a file so no caller's pipe is held open.
launch() {
    local name=$1
    shift
    setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    echo $! >"$STATE/pids/$name"
}

# Wait until the shell test $2 holds while daemon $1 stays alive.
wait_for() {
    local daemon=$1 check=$2 i
    for ((i = 0; i < WAIT_IDLE_S * 10; i++)); do
        if eval "$check"; then return 0; fi
        # Only existence here: just after the launch, the PID may still run setsid/setpriv.
        running "$(pid_of "$daemon")" || { tail -n 20 "$STATE/log/$daemon.out" >&2 || true; die "$daemon exited (logs: $STATE/log)"; }
        sleep 0.1
    done
    die "$daemon: '$check' still false after ${WAIT_IDLE_S}s (logs: $STATE/log)"
}

start() {
    [[ $EUID -eq 0 ]] || die "must run as root (the daemons run as root and munge)"
    if status >/dev/null 2>&1; then
        log "already running (state $STATE)"
        return 0
    fi
    # Leftovers of an earlier start whose daemons died: stop what is still alive, start afresh.
    [[ -d "$STATE/pids" ]] && stop
    # A failed start stops whatever it had started.
    trap '[[ $? -eq 0 ]] || { log "start failed; stopping what it started"; stop; }' EXIT
    mkdir -p "$STATE"
    chmod 755 "$STATE"
    install_packages
    for cmd in munged slurmctld slurmd sinfo setpriv; do
        command -v "$cmd" >/dev/null || die "$cmd not found after installing ${PACKAGES[*]}"
    done
    getent passwd munge >/dev/null || die "user munge does not exist (package munge)"
    for port in 6817 6818; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use: another SLURM daemon runs on this machine"
        fi
    done

    local conf
    for conf in slurm.conf gres.conf; do
        if [[ -e "$CONF_DIR/$conf" ]] && ! is_ours "$CONF_DIR/$conf"; then
            die "$CONF_DIR/$conf exists and was not written by this script; not overwriting it"
        fi
    done

    rm -rf "$STATE/ctld" "$STATE/spool" "$STATE/run" "$STATE/pids" "$STATE/munge"
    mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/run" "$STATE/pids" "$STATE/log" "$STATE/munge"
    # The fake GPU: a character device with /dev/null's major/minor; where the container may
    # not create devices, /dev/null itself serves.
    if [[ ! -e "$FAKE_GPU" ]]; then
        if mknod "$FAKE_GPU" c 1 3 2>/dev/null; then
            touch "$STATE/created_fake_gpu"
        else
            log "mknod $FAKE_GPU not permitted; the fake GPU is /dev/null"
            FAKE_GPU=/dev/null
        fi
    fi
    write_config

    # munge: own key, socket and files in the state directory, run as user munge.
    chown munge:munge "$STATE/munge"
    chmod 755 "$STATE/munge"
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$STATE/munge/munge.key"
    chmod 600 "$STATE/munge/munge.key"
    launch munged setpriv --reuid=munge --regid=munge --init-groups -- \
        munged --foreground --key-file="$STATE/munge/munge.key" \
        --socket="$STATE/munge/munge.socket.2" --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
    wait_for munged "[[ -S '$STATE/munge/munge.socket.2' ]]"

    launch slurmctld slurmctld -D -f "$CONF_DIR/slurm.conf"
    wait_for slurmctld "scontrol ping >/dev/null 2>&1"
    launch slurmd slurmd -D -f "$CONF_DIR/slurm.conf"
    # shellcheck disable=SC2016  # evaluated by wait_for, on each poll
    wait_for slurmd '[[ "$(node_state)" == idle ]]'
    for daemon in "${DAEMONS[@]}"; do
        alive "$daemon" || die "$daemon (pid $(pid_of "$daemon")) is not running (logs: $STATE/log)"
    done
    trap - EXIT
    log "node $NODE idle; pids: $(for d in "${DAEMONS[@]}"; do printf '%s=%s ' "$d" "$(pid_of "$d")"; done)"
}

stop() {
    [[ -d "$STATE/pids" ]] || { log "nothing to stop (no $STATE/pids)"; return 0; }
    # Cancel the jobs of this cluster first, so slurmd ends their steps and processes.
    if alive slurmctld; then
        local jobs
        jobs=$(squeue -h -o '%i' 2>/dev/null || true)
        if [[ -n "$jobs" ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do
                [[ -z "$(squeue -h -t running,completing -o '%i' 2>/dev/null)" ]] && break
                sleep 0.1
            done
        fi
    fi
    # SIGTERM to all at once (each takes about 2 s to shut down), SIGKILL after 10 s.
    local daemon pid t
    for daemon in "${DAEMONS[@]}"; do
        alive "$daemon" && kill -TERM "$(pid_of "$daemon")" 2>/dev/null || true
    done
    for daemon in "${DAEMONS[@]}"; do
        pid=$(pid_of "$daemon")
        for ((t = 0; t < 100; t++)); do
            alive "$daemon" || break
            sleep 0.1
        done
        if alive "$daemon"; then
            log "$daemon (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        [[ -n "$pid" ]] && log "stopped $daemon (pid $pid)"
        rm -f "$STATE/pids/$daemon"
    done
    rmdir "$STATE/pids" 2>/dev/null || true
    if [[ -e "$STATE/created_fake_gpu" ]]; then
        rm -f "$FAKE_GPU" "$STATE/created_fake_gpu"
    fi
    local conf
    for conf in slurm.conf gres.conf; do
        if is_ours "$CONF_DIR/$conf"; then rm -f "$CONF_DIR/$conf"; fi
    done
}

status() {
    local daemon
    for daemon in "${DAEMONS[@]}"; do
        alive "$daemon" || { echo "$daemon not running"; return 1; }
    done
    scontrol ping >/dev/null 2>&1 || { echo "slurmctld does not answer"; return 1; }
    echo "running: node $NODE $(node_state)"
}

NODE=$(hostname -s)
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
