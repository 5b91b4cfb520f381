#!/usr/bin/env bash
# Live migration, end to end on this machine (as root): install everything, start a second
# libvirt node (scripts/second-node.sh), boot the tiny guest on node a with `virtsync apply`
# on examples/two-node/, move it to node b with `virtsync migrate --wait`, and print what
# the guest saw before and after (SMBIOS UUID, serial, MAC, disk marker, its counter).
# Cleans up at the end: the VM is removed, and node b stopped unless it was running before.
#   bash scripts/demo-migrate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export VIRTSYNC_STATE_DIR=/var/lib/virtsync-nodes/demo-state
tree=examples/two-node
b_uri=qemu+tcp://127.0.0.1:16510/system

python tools/libvirt_daemon.py start >/dev/null
guest="$(bash scripts/build-tiny-guest.sh)"
images=/var/lib/virtsync-nodes/images
install -d -m 0755 "$images/tiny-guest" /var/lib/virtsync-nodes/shared
install -m 0644 "$guest/vmlinux" "$guest/initramfs.cpio.gz" "$images/tiny-guest/"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
cleanup() {
  for uri in qemu:///system "$b_uri"; do
    virsh -c "$uri" destroy demo2_tiny >/dev/null 2>&1 || true
    virsh -c "$uri" undefine demo2_tiny >/dev/null 2>&1 || true
  done
  [ "$b_was_up" = 1 ] || bash scripts/second-node.sh stop >/dev/null 2>&1 || true
}
b_was_up=0
bash scripts/second-node.sh status >/dev/null 2>&1 && b_was_up=1
trap cleanup EXIT

step scripts/second-node.sh start
bash scripts/second-node.sh start
log=/var/lib/virtsync-nodes/shared/.virtsync-console/demo2_tiny.log
# The console log outlives the VM (an earlier run's lines stay in it): read only what this
# run's guest prints, from the log's size now.
offset="$(stat -c %s "$log" 2>/dev/null || echo 0)"
console() { tail -c +"$((offset + 1))" "$log" 2>/dev/null || true; }
step virtsync apply $tree --auto-approve
virtsync apply $tree --auto-approve
# The last VS-CHECK line after the latest tick `after` (waits up to a minute under TCG).
check_after() {
  for _ in $(seq 1 240); do
    line="$(console | grep -a '^VS-CHECK' | tail -n 1 || true)"
    n="${line#VS-CHECK n=}"; n="${n%% *}"
    if [ -n "$line" ] && [ "$n" -gt "$1" ]; then echo "$line"; return 0; fi
    sleep 0.5
  done
  echo "no VS-CHECK after tick $1 in $log" >&2; return 1
}
last_tick() { console | grep -a '^VS-TICK' | tail -n 1; }
before="$(check_after 0)"
step virtsync status $tree
virtsync status $tree
printf '\nbefore, the guest on node a says:\n  %s\n  %s\n' "$before" "$(last_tick)"
n_before="$(last_tick | cut -d' ' -f2)"

step virtsync migrate demo2/tiny --path $tree --to b --wait
virtsync migrate demo2/tiny --path $tree --to b --wait
after="$(check_after "$n_before")"
printf '\nafter, the guest on node b says:\n  %s\n  %s\n' "$after" "$(last_tick)"
boots="$(console | grep -ac '^VS-BOOT' || true)"
ids="$(console | grep -a '^VS-TICK' | sed 's/.* boot=\([^ ]*\).*/\1/' | sort -u | wc -l)"
same() { [ "${before#VS-CHECK n=* }" = "${after#VS-CHECK n=* }" ]; }
echo "  boots: $boots, boot ids: $ids, identity and disk marker unchanged: $(same && echo yes || echo NO)"
step virtsync status $tree
virtsync status $tree
step virtsync plan $tree
virtsync plan $tree
[ "$boots" = 1 ] && [ "$ids" = 1 ] && same
