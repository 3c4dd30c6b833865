#!/usr/bin/env bash
# Installs, with apt-get, whatever vmpool needs to build and test that is not
# installed yet. Idempotent and quick when everything is present. Debian 12, root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 lua-busted
  libhiredis-dev libyaml-dev libcurl4-openssl-dev libxml2-dev
  libjansson-dev libmicrohttpd-dev libcmocka-dev libpcre2-dev libldap-dev
  redis-server redis-tools curl ca-certificates slapd ldap-utils openssl
)
[ "$#" -gt 0 ] && packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# Debian starts redis-server as a service on install; vmpool's tests start
# their own on private sockets and ports, so the stock one is not needed.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
  # Same for slapd: the LDAP tests run their own on a loopback port.
  systemctl disable --now slapd >/dev/null 2>&1 || true
fi
