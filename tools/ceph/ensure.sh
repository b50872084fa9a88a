#!/usr/bin/env bash
# Make sure the tools that tools/ceph/start.sh needs are installed; install
# Debian's ceph + radosgw (16.2 on bookworm, ~290 MB, ~20-50 s) with apt-get
# when radosgw is missing. For CI: run as root (or with sudo available).
set -euo pipefail

missing_pkgs=()
need_ceph=0
for tool in radosgw radosgw-admin ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool; do
  command -v "$tool" >/dev/null || need_ceph=1
done
[[ $need_ceph -eq 1 ]] && missing_pkgs+=(ceph radosgw)
command -v curl >/dev/null || missing_pkgs+=(curl)
command -v uuidgen >/dev/null || missing_pkgs+=(uuid-runtime)
command -v ss >/dev/null || missing_pkgs+=(iproute2)
command -v setsid >/dev/null || missing_pkgs+=(util-linux)

if [[ ${#missing_pkgs[@]} -eq 0 ]]; then
  echo "ensure.sh: Ceph present: $(ceph --version 2>/dev/null)"
  exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || {
    echo "ensure.sh: need root (or sudo) to install: ${missing_pkgs[*]}" >&2
    exit 1
  }
  SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure.sh: installing ${missing_pkgs[*]}"
t0=$(date +%s)
"${SUDO[@]}" timeout 600 apt-get update -qq
"${SUDO[@]}" timeout 1200 apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
command -v radosgw >/dev/null || {
  echo "ensure.sh: radosgw still missing after apt-get install" >&2
  exit 1
}
echo "ensure.sh: installed in $(($(date +%s) - t0)) s: $(ceph --version 2>/dev/null)"
