#!/usr/bin/env bash
# Stop the daemons that tools/ceph/start.sh started in DIR, by the PIDs in
# DIR/pids/NAME.pid: SIGTERM, then SIGKILL after a grace period.
#
#   tools/ceph/stop.sh DIR [--clean] [--grace SECONDS] [--kill] [NAME...]
#
# NAME: mon.a mgr.x osd.0 rgw.a rgw.b (default: all of them; the gateways
# first, then mgr and OSD, the mon last). --kill sends SIGKILL at once (e.g.
# `stop.sh DIR --kill rgw.a` for a failover test). --clean removes DIR
# afterwards (only with all daemons). Without --clean nothing but the pid
# files of stopped daemons is removed. A PID is signalled only while its
# command line still names DIR/ceph.conf, so a stale pid file never hits an
# unrelated process. Stopping what is already stopped succeeds.
set -euo pipefail

usage() {
  echo "usage: $0 DIR [--clean] [--grace SECONDS] [--kill] [NAME...]" >&2
  exit 2
}

DIR=""
CLEAN=0
KILL_NOW=0
GRACE="${FTV_CEPH_STOP_GRACE:-10}"
NAMES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clean) CLEAN=1; shift ;;
    --kill) KILL_NOW=1; shift ;;
    --grace) GRACE="${2:-}"; shift 2 || usage ;;
    --grace=*) GRACE="${1#--grace=}"; shift ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) if [[ -z "$DIR" ]]; then DIR="$1"; else NAMES+=("$1"); fi; shift ;;
  esac
done
[[ -n "$DIR" ]] || usage
[[ "$GRACE" =~ ^[0-9]+$ ]] || usage
DIR="$(realpath -m "$DIR")"
CONF="$DIR/ceph.conf"
if [[ ${#NAMES[@]} -gt 0 && $CLEAN -eq 1 ]]; then
  echo "stop.sh: --clean stops everything; give no NAME with it" >&2
  exit 2
fi
if [[ ! -d "$DIR" ]]; then
  echo "stop.sh: $DIR does not exist; nothing to stop"
  exit 0
fi

# pid of NAME if that process is still one of this cluster's daemons
live_pid() {
  local f="$DIR/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # zombie or gone: not alive
  local state
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

# stop_group NAME... : signal all, wait for all (grace), then SIGKILL the rest
stop_group() {
  local name pid sig=TERM
  [[ $KILL_NOW -eq 1 ]] && sig=KILL
  local -a waiting=()
  for name in "$@"; do
    if pid="$(live_pid "$name")"; then
      kill "-$sig" "$pid" 2>/dev/null || true
      waiting+=("$name")
    else
      rm -f "$DIR/pids/$name.pid"
    fi
  done
  [[ ${#waiting[@]} -gt 0 ]] || return 0
  local t0
  t0=$(date +%s%3N)
  local deadline=$((t0 + GRACE * 1000))
  while true; do
    local -a still=()
    for name in "${waiting[@]}"; do
      if live_pid "$name" >/dev/null; then still+=("$name"); else
        rm -f "$DIR/pids/$name.pid"
        if [[ $sig == KILL ]]; then echo "killed $name"; else echo "stopped $name ($(($(date +%s%3N) - t0)) ms)"; fi
      fi
    done
    waiting=("${still[@]+"${still[@]}"}")
    [[ ${#waiting[@]} -gt 0 ]] || return 0
    if (($(date +%s%3N) > deadline)); then
      for name in "${waiting[@]}"; do
        if pid="$(live_pid "$name")"; then
          echo "stop.sh: $name (pid $pid) still running after ${GRACE}s; SIGKILL" >&2
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      local i
      for ((i = 0; i < 50; i++)); do
        still=()
        for name in "${waiting[@]}"; do live_pid "$name" >/dev/null && still+=("$name"); done
        [[ ${#still[@]} -gt 0 ]] || break
        sleep 0.1
      done
      for name in "${waiting[@]}"; do
        if live_pid "$name" >/dev/null; then echo "stop.sh: $name would not die" >&2; else
          rm -f "$DIR/pids/$name.pid"
          echo "killed $name"
        fi
      done
      return 0
    fi
    sleep 0.1
  done
}

if [[ ${#NAMES[@]} -gt 0 ]]; then
  stop_group "${NAMES[@]}"
else
  # Gateways first (a radosgw whose OSD is already gone can hang in its
  # shutdown), then mgr and OSD (the OSD tells the mon it goes down), then
  # the mon; then anything else with a pid file.
  stop_group rgw.a rgw.b
  stop_group mgr.x osd.0
  stop_group mon.a
  others=()
  for f in "$DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    others+=("$(basename "$f" .pid)")
  done
  [[ ${#others[@]} -eq 0 ]] || stop_group "${others[@]}"
fi

if [[ $CLEAN -eq 1 ]]; then
  left=()
  for f in "$DIR"/pids/*.pid; do [[ -e "$f" ]] && left+=("$(basename "$f" .pid)"); done
  if [[ ${#left[@]} -gt 0 ]]; then
    echo "stop.sh: not cleaning $DIR: still running: ${left[*]}" >&2
    exit 1
  fi
  if [[ -f "$CONF" || -d "$DIR/pids" ]]; then
    asok="$(sed -n 's/^admin socket = \(\/tmp\/ftv-ceph-asok\.[A-Za-z0-9]*\)\/.*/\1/p' "$CONF" 2>/dev/null | head -n 1)"
    [[ -n "$asok" ]] && rm -rf "$asok"
    rm -rf "$DIR"
    echo "removed $DIR"
  else
    echo "stop.sh: $DIR does not look like a start.sh cluster; not removing it" >&2
    exit 1
  fi
fi
