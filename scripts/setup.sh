#!/usr/bin/env bash
# Installs everything virtsync and its tests need on a fresh Debian/Ubuntu machine (as root):
# libvirt + QEMU from Debian packages, then a virtualenv in .venv with virtsync and its dev tools.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
  qemu-system-x86 qemu-utils libvirt-dev pkg-config gcc python3-dev
  busybox-static dnsmasq-base cpio xz-utils git
  # tests/gitops runs the Argo CD health Lua under gopher-lua (Debian's Go source package).
  golang-go golang-github-yuin-gopher-lua-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --force-confold: keep an edited /etc/libvirt/qemu.conf without prompting.
  apt-get install -y -qq -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.virtsync-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ok (.venv ready)" >&2
