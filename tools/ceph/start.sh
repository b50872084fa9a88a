#!/usr/bin/env bash
# Start a throwaway single-node Ceph 16.2 (pacific) with two RADOS Gateways,
# for tests: one mon, one mgr, one OSD, radosgw "a" and "b" on two free
# 127.0.0.1 ports, cephx auth, one S3 user with known keys.
#
#   tools/ceph/start.sh DIR [--store bluestore|memstore]
#
# DIR must be absent or empty. On success it prints the endpoints, writes
# DIR/env (source it: FTV_S3_ENDPOINT_A/B, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, ...) and exits 0 with the daemons left
# running, each in its own session (setsid), in the foreground (-f), its PID
# in DIR/pids/NAME.pid (mon.a, mgr.x, osd.0, rgw.a, rgw.b). Stop them with
# tools/ceph/stop.sh DIR. On any failure or time-out it says what did not
# come up, shows the end of that daemon's log, stops what it started and
# exits 1.
#
# Environment (all optional):
#   FTV_CEPH_STORE        bluestore (default) or memstore; --store wins
#   FTV_S3_ACCESS_KEY     S3 access key  (default FTVTESTACCESSKEY0001)
#   FTV_S3_SECRET_KEY     S3 secret key  (default ftv-test-secret-key-...)
#   FTV_CEPH_TIMEOUT_SCALE multiply every wait limit (default 1; e.g. 2 or 0.5)
#
# Needs the Debian packages ceph and radosgw (tools/ceph/ensure.sh), curl, ss.
set -euo pipefail

usage() {
  echo "usage: $0 DIR [--store bluestore|memstore]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
DIR=""
STORE="${FTV_CEPH_STORE:-bluestore}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --store) STORE="${2:-}"; shift 2 || usage ;;
    --store=*) STORE="${1#--store=}"; shift ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [[ -z "$DIR" ]] || usage; DIR="$1"; shift ;;
  esac
done
[[ -n "$DIR" ]] || usage
case "$STORE" in bluestore | memstore) ;; *) echo "start.sh: unknown store '$STORE'" >&2; exit 2 ;; esac

ACCESS_KEY="${FTV_S3_ACCESS_KEY:-FTVTESTACCESSKEY0001}"
SECRET_KEY="${FTV_S3_SECRET_KEY:-ftv-test-secret-key-0000000000000000000000}"
REGION="us-east-1"
SCALE="${FTV_CEPH_TIMEOUT_SCALE:-1}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for tool in ceph ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl ss setsid uuidgen; do
  command -v "$tool" >/dev/null || {
    echo "start.sh: '$tool' not found (tools/ceph/ensure.sh installs Ceph)" >&2
    exit 1
  }
done

DIR="$(realpath -m "$DIR")"
if [[ -e "$DIR" && -n "$(ls -A "$DIR" 2>/dev/null)" ]]; then
  echo "start.sh: $DIR is not empty; stop and clean it first (tools/ceph/stop.sh $DIR --clean) or use a fresh DIR" >&2
  exit 1
fi
mkdir -p "$DIR"/{pids,log,run,mon.a,mgr.x,osd.0}
CONF="$DIR/ceph.conf"
KEYRING="$DIR/keyring"
export CEPH_CONF="$CONF"
# Unix socket paths are limited to 107 bytes.
ASOK_DIR="$DIR/run"
if ((${#ASOK_DIR} > 80)); then ASOK_DIR="$(mktemp -d /tmp/ftv-ceph-asok.XXXXXX)"; fi

T0=$(date +%s%3N)
say() { printf '[%6.1fs] %s\n' "$(($(date +%s%3N) - T0))e-3" "$*"; }

STARTED_OK=0
cleanup() {
  local rc=$?
  if [[ $STARTED_OK -ne 1 ]]; then
    echo "start.sh: failed; stopping what was started (logs stay in $DIR/log)" >&2
    "$HERE/stop.sh" "$DIR" >&2 || true
    exit "$((rc == 0 ? 1 : rc))"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "start.sh: $*" >&2
  exit 1
}

show_log() { # NAME: the end of its log file and of its stdout/stderr
  local log="$DIR/log/$1.log" f
  if [[ "$1" == rgw.* ]]; then log="$DIR/log/client.$1.log"; fi
  for f in "$log" "$DIR/log/$1.out"; do
    if [[ -s "$f" ]]; then
      echo "---- last lines of $f" >&2
      tail -n 20 "$f" >&2
    fi
  done
  echo "----" >&2
}

# ---- ports: mon, two gateways, and a block for the OSD/mgr messenger
USED_PORTS=" $(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
pick_port() { # VAR
  local p i
  for ((i = 0; i < 500; i++)); do
    p=$((20000 + RANDOM % 40000))
    if [[ "$USED_PORTS" != *" $p "* ]]; then
      USED_PORTS+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  fail "no free port found"
}
pick_range() { # VAR_MIN COUNT
  local base i j ok
  for ((i = 0; i < 500; i++)); do
    base=$((20000 + RANDOM % 40000))
    ok=1
    for ((j = 0; j < $2; j++)); do
      [[ "$USED_PORTS" == *" $((base + j)) "* ]] && { ok=0; break; }
    done
    if [[ $ok -eq 1 ]]; then
      for ((j = 0; j < $2; j++)); do USED_PORTS+="$((base + j)) "; done
      printf -v "$1" '%s' "$base"
      return 0
    fi
  done
  fail "no free port range found"
}
pick_port MON_PORT
pick_port RGW_A_PORT
pick_port RGW_B_PORT
pick_range MS_PORT_MIN 40
# shellcheck disable=SC2153 # MS_PORT_MIN is set by pick_range
MS_PORT_MAX=$((MS_PORT_MIN + 39))

FSID="$(uuidgen)"
OSD_UUID="$(uuidgen)"

# ---- configuration
if [[ "$STORE" == bluestore ]]; then
  STORE_CONF="osd objectstore = bluestore
bluestore block path = $DIR/osd.0/block.file
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 1073741824
bluestore cache autotune = false
bluestore cache size = 134217728"
else
  STORE_CONF="osd objectstore = memstore
memstore device bytes = 17179869184"
fi

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind ipv4 = true
ms bind msgr1 = false
ms bind port min = $MS_PORT_MIN
ms bind port max = $MS_PORT_MAX
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $KEYRING
run dir = $DIR/run
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon pg warn min per osd = 0
mon data avail warn = 2
mon data avail crit = 1
osd crush chooseleaf type = 0
# Faster start: the mon commits map changes (pool creations) every 0.1 s
# instead of every 1 s, and bluestore's aio thread, which every close of the
# block file waits for, polls every 20 ms instead of 250 ms.
paxos propose interval = 0.1
bdev aio poll ms = 20
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# The mgr is kept small: none of its Python modules is needed here.
mgr initial modules =
mgr disabled modules = alerts balancer crash devicehealth diskprediction_local influx insights iostat localpool mirroring nfs orchestrator osd_perf_query osd_support pg_autoscaler progress prometheus rbd_support restful selftest snap_schedule stats status telegraf telemetry test_orchestrator volumes zabbix

[mon]
mon data = $DIR/mon.a
admin socket = $ASOK_DIR/\$name.asok

[mgr]
mgr data = $DIR/mgr.x
admin socket = $ASOK_DIR/\$name.asok

[osd]
osd data = $DIR/osd.0
osd crush update on start = true
osd op num shards = 2
osd op num threads per shard = 2
admin socket = $ASOK_DIR/\$name.asok
$STORE_CONF

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_A_PORT
rgw data = $DIR/rgw.a
admin socket = $ASOK_DIR/\$name.asok

[client.rgw.b]
rgw frontends = beast endpoint=127.0.0.1:$RGW_B_PORT
rgw data = $DIR/rgw.b
admin socket = $ASOK_DIR/\$name.asok

[client]
rgw thread pool size = 64
rgw dynamic resharding = false
rgw enable usage log = false
# Deleted and overwritten objects' data is reclaimed after 5 min, not 2 h,
# so a long test run does not fill the OSD with garbage.
rgw gc obj min wait = 300
rgw gc processor period = 60
EOF
mkdir -p "$DIR/rgw.a" "$DIR/rgw.b" "$DIR/crash"

# ---- keys, made up front as Ceph's vstart.sh does; the mon imports them all
{
  ceph-authtool --create-keyring --gen-key --name=mon. "$KEYRING" --cap mon 'allow *'
  ceph-authtool --gen-key --name=client.admin "$KEYRING" \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
  ceph-authtool --gen-key --name=mgr.x "$KEYRING" \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *'
  ceph-authtool --gen-key --name=osd.0 "$KEYRING" \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
  for g in a b; do
    ceph-authtool --gen-key --name=client.rgw.$g "$KEYRING" \
      --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw'
  done
} >"$DIR/log/setup.out" 2>&1 || { show_log setup; fail "ceph-authtool failed"; }
chmod 600 "$KEYRING"

# ---- helpers
start_daemon() { # NAME CMD...
  local name="$1"
  shift
  setsid "$@" -f -c "$CONF" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/pids/$name.pid"
}

alive() { # NAME
  local pid
  pid="$(cat "$DIR/pids/$1.pid" 2>/dev/null)" || return 1
  kill -0 "$pid" 2>/dev/null
}

# wait_for LABEL DAEMON LIMIT_SECONDS CMD... : poll CMD until it succeeds
wait_for() {
  local label="$1" daemon="$2" limit="$3"
  shift 3
  local deadline
  deadline=$(($(date +%s%3N) + $(awk -v l="$limit" -v s="$SCALE" 'BEGIN { printf "%d", l * s * 1000 }')))
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n "$daemon" ]] && ! alive "$daemon"; then
      show_log "$daemon"
      fail "$daemon exited while waiting for: $label"
    fi
    if (($(date +%s%3N) > deadline)); then
      [[ -n "$daemon" ]] && show_log "$daemon"
      fail "timed out after ${limit}s (x$SCALE) waiting for: $label"
    fi
    sleep 0.25
  done
}

cephq() { timeout 20 ceph --connect-timeout 10 "$@"; }

# ---- mon
monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" \
  "$DIR/monmap" >>"$DIR/log/setup.out" 2>&1 || { show_log setup; fail "monmaptool failed"; }
timeout 60 ceph-mon --mkfs -c "$CONF" -i a --monmap="$DIR/monmap" --keyring="$KEYRING" \
  >>"$DIR/log/setup.out" 2>&1 || { show_log setup; show_log mon.a; fail "ceph-mon --mkfs failed"; }
start_daemon mon.a ceph-mon -i a
wait_for "mon.a to answer" mon.a 30 cephq mon stat
say "mon.a up on 127.0.0.1:$MON_PORT"

# ---- mgr (not needed by the gateways; checked again at the end)
start_daemon mgr.x ceph-mgr -i x

# ---- osd
OSD_ID="$(cephq osd new "$OSD_UUID" 0 2>>"$DIR/log/setup.out")" || { show_log setup; fail "ceph osd new failed"; }
[[ "$OSD_ID" == 0 ]] || fail "ceph osd new gave id '$OSD_ID', expected 0"
timeout 120 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" \
  >>"$DIR/log/setup.out" 2>&1 || { show_log setup; show_log osd.0; fail "ceph-osd --mkfs failed"; }
start_daemon osd.0 ceph-osd -i 0
osd_up() { cephq osd stat -f json | grep -q '"num_up_osds":1'; }
wait_for "osd.0 up" osd.0 60 osd_up
say "osd.0 up ($STORE)"

# ---- gateways: a first (it creates the RGW pools), then b
rgw_answers() { # PORT
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$1/")"
  [[ "$code" =~ ^[2-4][0-9][0-9]$ ]]
}
start_daemon rgw.a radosgw -n client.rgw.a
wait_for "rgw.a answering on 127.0.0.1:$RGW_A_PORT" rgw.a 120 rgw_answers "$RGW_A_PORT"
say "rgw.a up on 127.0.0.1:$RGW_A_PORT"
start_daemon rgw.b radosgw -n client.rgw.b

# ---- the S3 user
timeout 60 radosgw-admin user create --uid=ftv --display-name="ftv tests" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
  >"$DIR/log/user.out" 2>&1 || { show_log user; fail "radosgw-admin user create failed"; }
say "S3 user ftv created"

wait_for "rgw.b answering on 127.0.0.1:$RGW_B_PORT" rgw.b 60 rgw_answers "$RGW_B_PORT"
say "rgw.b up on 127.0.0.1:$RGW_B_PORT"

# ---- both gateways answer a signed S3 request (ListBuckets) with the user's keys
# (curl 7.88 signs no payload hash of its own; RGW needs x-amz-content-sha256.)
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_ok() { # PORT
  curl -sf --max-time 5 --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: $EMPTY_SHA256" "http://127.0.0.1:$1/" | grep -q ListAllMyBucketsResult
}
wait_for "signed S3 ListBuckets via rgw.a" rgw.a 30 s3_ok "$RGW_A_PORT"
wait_for "signed S3 ListBuckets via rgw.b" rgw.b 30 s3_ok "$RGW_B_PORT"
say "S3 answers on both gateways"

mgr_up() { cephq mgr stat | grep -q '"available": true'; }
wait_for "mgr.x available" mgr.x 60 mgr_up
# Its always-on modules are disabled on purpose (mgr RSS 36 MiB, not 300).
cephq health mute MGR_MODULE_ERROR --sticky >/dev/null 2>&1 || true
say "mgr.x available"

{
  echo "# written by tools/ceph/start.sh; source it"
  for kv in \
    "FTV_S3_ENDPOINT_A=http://127.0.0.1:$RGW_A_PORT" \
    "FTV_S3_ENDPOINT_B=http://127.0.0.1:$RGW_B_PORT" \
    "FTV_S3_ENDPOINTS=http://127.0.0.1:$RGW_A_PORT,http://127.0.0.1:$RGW_B_PORT" \
    "AWS_ACCESS_KEY_ID=$ACCESS_KEY" \
    "AWS_SECRET_ACCESS_KEY=$SECRET_KEY" \
    "AWS_REGION=$REGION" \
    "FTV_S3_FORCE_PATH_STYLE=true" \
    "FTV_CEPH_DIR=$DIR" \
    "FTV_CEPH_STORE=$STORE" \
    "FTV_S3_PIDFILE_A=$DIR/pids/rgw.a.pid" \
    "FTV_S3_PIDFILE_B=$DIR/pids/rgw.b.pid" \
    "CEPH_CONF=$CONF"; do
    v="${kv#*=}"
    if [[ "$v" =~ ^[A-Za-z0-9_./:,@+=-]*$ ]]; then
      printf 'export %s=%s\n' "${kv%%=*}" "$v"
    else
      printf 'export %s=%q\n' "${kv%%=*}" "$v"
    fi
  done
} >"$DIR/env"
STARTED_OK=1
say "ready: A=http://127.0.0.1:$RGW_A_PORT B=http://127.0.0.1:$RGW_B_PORT (source $DIR/env)"
