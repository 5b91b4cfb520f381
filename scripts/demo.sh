#!/usr/bin/env bash
# The main job, end to end on this machine (as root): install everything, start libvirt's
# daemons (no systemd needed), put the tiny bootable guest into the node's image
# directory, then validate, plan and apply examples/ on the embedded default backend
# (one local libvirt node, qemu:///system) and show the status and the guest's console.
#   bash scripts/demo.sh            # run the demo (VMs stay defined and running)
#   bash scripts/demo.sh --cleanup  # afterwards: remove the demo's VMs (disks kept)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

if [ "${1:-}" = "--cleanup" ]; then
  for d in $(virsh -c qemu:///system list --all --name | grep '^demo_' || true); do
    virsh -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
    virsh -c qemu:///system undefine "$d" >/dev/null
    echo "removed $d"
  done
  exit 0
fi

python tools/libvirt_daemon.py start >/dev/null
guest="$(bash scripts/build-tiny-guest.sh)"
images=/var/lib/virtsync/images
install -d -m 0755 "$images/tiny-guest" /var/lib/virtsync/storage
install -m 0644 "$guest/vmlinux" "$guest/initramfs.cpio.gz" "$images/tiny-guest/"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step virtsync validate examples/
virtsync validate examples/
step virtsync plan examples/
virtsync plan examples/ || true      # exit 1 = there are changes to apply
console_log() { find /var/lib/virtsync/storage -name 'demo_tiny*.log' 2>/dev/null | head -n 1; }
# The console log outlives a guest: if this apply boots it, show only the new boot's lines.
log="$(console_log)"
offset="$( [ -n "$log" ] && stat -c %s "$log" || echo 0)"
step virtsync apply examples/ --auto-approve
virtsync apply examples/ --auto-approve
step virtsync status examples/
sleep 3                              # let the tiny guest reach its init
virtsync status examples/
log="$(console_log)"
if [ -n "$log" ]; then
  console() { tail -c +"$((offset + 1))" "$log"; }
  # The guest prints VS-READY once it has reported its identity; under TCG on a busy
  # machine that takes from a few seconds to about a minute. No new boot (the guest was
  # already running): its earlier lines are the ones to show.
  if console | grep -aq VS-BOOT || [ "$offset" = 0 ]; then
    for _ in $(seq 1 120); do console | grep -aq VS-READY && break; sleep 0.5; done
  else
    offset=0
  fi
  step "tail $log   # the guest's serial console"
  # (the guest's heartbeat lines, VS-TICK/VS-CHECK, would fill the tail: show the last one)
  { console | grep -a -v -e 'VS-TICK' -e 'VS-CHECK' | tail -n 8
    console | grep -a '^VS-TICK' | tail -n 1; }
fi
step virtsync plan examples/
virtsync plan examples/
