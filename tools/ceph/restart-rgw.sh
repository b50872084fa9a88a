#!/usr/bin/env bash
# Start gateway a or b of a tools/ceph/start.sh cluster again after it was
# stopped or killed (e.g. `stop.sh DIR --kill rgw.a` in a failover test), on
# the same port, and wait until it answers S3 (limit 60 s).
#
#   tools/ceph/restart-rgw.sh DIR a|b
set -euo pipefail

[[ $# -eq 2 && ( "$2" == a || "$2" == b ) ]] || {
  echo "usage: $0 DIR a|b" >&2
  exit 2
}
DIR="$(realpath -m "$1")"
G="$2"
NAME="rgw.$G"
CONF="$DIR/ceph.conf"
[[ -f "$CONF" && -f "$DIR/env" ]] || {
  echo "restart-rgw.sh: $DIR is not a running start.sh cluster" >&2
  exit 1
}
PIDF="$DIR/pids/$NAME.pid"
if [[ -f "$PIDF" ]]; then
  pid="$(cat "$PIDF")"
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF"; then
    echo "restart-rgw.sh: $NAME is already running (pid $pid)" >&2
    exit 1
  fi
fi
PORT="$(sed -n "/^\[client\.rgw\.$G\]/,/^\[/s/^rgw frontends = beast endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p" "$CONF")"
[[ -n "$PORT" ]] || {
  echo "restart-rgw.sh: no port for $NAME in $CONF" >&2
  exit 1
}
# shellcheck disable=SC1091
source "$DIR/env"

setsid radosgw -n "client.rgw.$G" -f -c "$CONF" </dev/null >>"$DIR/log/$NAME.out" 2>&1 &
pid=$!
echo "$pid" >"$PIDF"

EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
T0=$(date +%s%3N)
deadline=$((T0 + $(awk -v s="${FTV_CEPH_TIMEOUT_SCALE:-1}" 'BEGIN { printf "%d", 60000 * s }')))
until curl -sf --max-time 5 --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $EMPTY_SHA256" \
  "http://127.0.0.1:$PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$DIR/log/client.$NAME.log" "$DIR/log/$NAME.out" >&2 2>/dev/null || true
    echo "restart-rgw.sh: $NAME exited" >&2
    exit 1
  fi
  if (($(date +%s%3N) > deadline)); then
    tail -n 20 "$DIR/log/client.$NAME.log" >&2 2>/dev/null || true
    echo "restart-rgw.sh: $NAME did not answer on 127.0.0.1:$PORT within 60s; stopping it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDF"
    exit 1
  fi
  sleep 0.2
done
echo "$NAME up again on 127.0.0.1:$PORT (pid $pid) in $(($(date +%s%3N) - T0)) ms"
