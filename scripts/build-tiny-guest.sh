#!/usr/bin/env bash
# Builds the tiny real guest the real-QEMU test lane, the benchmark and the README demo boot:
#   <out>/vmlinux     uncompressed kernel from Debian's current linux-image-*-amd64 package
#                     (an uncompressed kernel reaches its first console line ~2x faster under TCG)
#   <out>/initramfs.cpio.gz  busybox-static initramfs with the virtio/ACPI modules and a small /init
# The folder is laid out the way virtsync's firmware.kernelBoot expects a "container image"
# folder in the node's image directory. Rebuilt only when missing or when this script changed.
# Usage: scripts/build-tiny-guest.sh [OUT_DIR]   (default: .cache/tiny-guest in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-.cache/tiny-guest}")"
STAMP_WANT="$(sha256sum "$0" | cut -d' ' -f1)"

up_to_date() {
  [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP_WANT" ] \
    && [ -s "$OUT/vmlinux" ] && [ -s "$OUT/initramfs.cpio.gz" ]
}
if up_to_date; then echo "$OUT"; exit 0; fi

mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
# Another build may have finished while we waited for the lock.
if up_to_date; then echo "$OUT"; exit 0; fi

resolve_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
PKG="$(resolve_kernel_pkg)"
if [ -z "$PKG" ]; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq
  PKG="$(resolve_kernel_pkg)"
fi
[ -n "$PKG" ] || { echo "build-tiny-guest: cannot resolve linux-image-amd64 with apt-cache" >&2; exit 1; }
BUSYBOX=/bin/busybox   # busybox-static; the initramfs has no libc, so it must be static
[ -x "$BUSYBOX" ] || { echo "build-tiny-guest: busybox-static is not installed" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "build-tiny-guest: $BUSYBOX is dynamically linked; install busybox-static" >&2; exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Sandbox user root: _apt cannot write into our private temp dir.
( cd "$WORK" && apt-get download -qq -o APT::Sandbox::User=root "$PKG" )
dpkg -x "$WORK"/"$PKG"_*.deb "$WORK/pkg"
KVER="${PKG#linux-image-}"
VMLINUZ="$WORK/pkg/boot/vmlinuz-$KVER"
MODDIR="$WORK/pkg/lib/modules/$KVER/kernel"

# The bzImage carries its payload as one xz stream; cut from the xz magic and decompress.
OFFSET="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$VMLINUZ" | head -1 | cut -d: -f1)"
[ -n "$OFFSET" ] || { echo "build-tiny-guest: no xz payload in $VMLINUZ" >&2; exit 1; }
# (via a file: xz stops reading at the stream end, which would SIGPIPE a pipe under pipefail)
tail -c +"$((OFFSET + 1))" "$VMLINUZ" > "$WORK/payload.xz"
xz -dc --single-stream < "$WORK/payload.xz" > "$WORK/vmlinux"
head -c 4 "$WORK/vmlinux" | grep -q $'^\x7fELF' || { echo "build-tiny-guest: vmlinux is not ELF" >&2; exit 1; }

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,modules,etc/acpi/PWRF,usr/share/udhcpc}
cp "$BUSYBOX" "$ROOT/bin/busybox"
mkdir -p "$ROOT/modules/seed"
for m in drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko \
         drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko \
         drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko net/core/failover.ko \
         drivers/net/net_failover.ko drivers/net/virtio_net.ko drivers/acpi/button.ko \
         drivers/input/evdev.ko; do
  cp "$MODDIR/$m" "$ROOT/modules/"
done
# SATA cdrom + ISO 9660, loaded only when a cloud-init seed is expected: probing the
# AHCI ports costs a couple of seconds under TCG.
for m in drivers/scsi/scsi_common.ko drivers/scsi/scsi_mod.ko drivers/ata/libata.ko \
         drivers/ata/libahci.ko drivers/ata/ahci.ko drivers/cdrom/cdrom.ko \
         drivers/scsi/sr_mod.ko fs/isofs/isofs.ko; do
  cp "$MODDIR/$m" "$ROOT/modules/seed/"
done

# Power button → flush and power off at once: this is what proves ACPI reached init.
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'ACPI'
#!/bin/busybox sh
echo "VS-ACPI power-button" > /dev/console
sync
/bin/busybox poweroff -f
ACPI

cat > "$ROOT/usr/share/udhcpc/default.script" <<'DHCP'
#!/bin/busybox sh
case "$1" in
  bound|renew)
    /bin/busybox ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "VS-IP $interface $ip" > /dev/console ;;
esac
DHCP

# /init prints one VS-* line per fact so tests can parse the serial console log, then
# `VS-TICK <n> boot=<boot id> up=<uptime>` every 0.5 s and `VS-CHECK ...` every 2 s.
cat > "$ROOT/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "VS-BOOT init started"
# No modules.dep in the initramfs: insmod in passes until a pass loads nothing more.
load_modules() {
  progress=1
  while [ "$progress" = 1 ]; do
    progress=0
    for m in "$1"/*.ko; do
      n="$(basename "$m" .ko)"
      grep -q "^$n " /proc/modules && continue
      insmod "$m" 2>/dev/null && progress=1
    done
  done
}
load_modules /modules
echo "VS-UUID $(cat /sys/class/dmi/id/product_uuid 2>/dev/null)"
echo "VS-SERIAL $(cat /sys/class/dmi/id/product_serial 2>/dev/null)"
echo "VS-CPUS $(grep -c ^processor /proc/cpuinfo)"
for d in /sys/class/net/*; do
  n="$(basename "$d")"
  [ "$n" = lo ] && continue
  echo "VS-MAC $n $(cat "$d/address")"
done
# Each writable virtio disk keeps a marker in its first sector: created on the first boot,
# found again on every later boot of the same disk.
for b in /sys/block/vd*; do
  [ -e "$b" ] || continue
  n="$(basename "$b")"
  serial="$(cat "$b/serial" 2>/dev/null)"
  size="$(cat "$b/size")"
  if [ "$(cat "$b/ro")" = 1 ]; then
    echo "VS-DISK $n serial=$serial sectors=$size marker=readonly"
    continue
  fi
  head=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -d '\000 ')
  case "$head" in
    VSMARK:*) echo "VS-DISK $n serial=$serial sectors=$size marker=found:${head#VSMARK:}" ;;
    *)
      m="VSMARK:$(cat /proc/sys/kernel/random/uuid)"
      printf '%-64s' "$m" | dd of=/dev/$n bs=64 count=1 conv=notrunc,fsync 2>/dev/null
      sync
      echo "VS-DISK $n serial=$serial sectors=$size marker=new:${m#VSMARK:}" ;;
  esac
done
mkdir -p /var/run
# Default busybox action table: PWRF → runs /etc/acpi/PWRF/00000080.
# With "vs.seed" on the kernel command line a cloud-init NoCloud seed is expected on the
# first cdrom: print what cloud-init would read from it.
if grep -q 'vs.seed' /proc/cmdline; then
  load_modules /modules/seed
  for i in $(seq 1 100); do [ -b /dev/sr0 ] && break; sleep 0.1; done
  mkdir -p /seed
  if mount -t iso9660 -o ro /dev/sr0 /seed 2>/dev/null; then
    echo "VS-SEED files=$(ls /seed | tr '\n' ',') $(grep '^instance-id:' /seed/meta-data)"
    umount /seed
  else
    echo "VS-SEED none"
  fi
fi
acpid -c /etc/acpi -l /dev/null
# Up to 8 s per NIC: a port on a bridge with STP (libvirt's default network) forwards
# only after the kernel's minimum forward delay.
for d in /sys/class/net/*; do
  n="$(basename "$d")"
  [ "$n" = lo ] && continue
  ip link set "$n" up
  udhcpc -i "$n" -n -q -t 8 -T 1 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 \
    || echo "VS-IP $n none"
done
echo "VS-READY"
# What the guest sees of its identity now, one line: SMBIOS, MACs, and each writable
# disk's marker read from the disk itself (caches dropped first), so that after a live
# migration the guest proves it kept them.
check() {
  read uuid < /sys/class/dmi/id/product_uuid
  read serial < /sys/class/dmi/id/product_serial
  line="VS-CHECK n=$1 uuid=$uuid serial=$serial"
  for d in /sys/class/net/*; do
    [ "${d##*/}" = lo ] && continue
    read mac < "$d/address"
    line="$line mac.${d##*/}=$mac"
  done
  echo 3 > /proc/sys/vm/drop_caches
  for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    read ro < "$b/ro"
    [ "$ro" = 1 ] && continue
    head=$(dd if=/dev/${b##*/} bs=64 count=1 2>/dev/null | tr -d '\000 ')
    line="$line disk.${b##*/}=${head#VSMARK:}"
  done
  echo "$line"
}
# A heartbeat for live-migration tests: the counter goes on across a migration and starts
# again at 1 (with a new boot id) after a restart; every 4th tick also prints VS-CHECK.
# `read` is a shell builtin: no fork per tick, which keeps it cheap under TCG.
read boot_id < /proc/sys/kernel/random/boot_id
n=0
while :; do
  n=$((n + 1))
  read up _ < /proc/uptime
  echo "VS-TICK $n boot=$boot_id up=$up"
  [ $((n % 4)) = 0 ] && check "$n"
  sleep 0.5
done
INIT
chmod 755 "$ROOT/init" "$ROOT/etc/acpi/PWRF/00000080" "$ROOT/usr/share/udhcpc/default.script"
( cd "$ROOT" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 > "$WORK/initramfs.cpio.gz" )

NEW="$(mktemp -d "$OUT.new.XXXXXX")"
mv "$WORK/vmlinux" "$WORK/initramfs.cpio.gz" "$NEW/"
echo "$KVER" > "$NEW/kernel-version"
echo "$STAMP_WANT" > "$NEW/stamp"
chmod 755 "$NEW"
chmod 644 "$NEW"/*
rm -rf "$OUT"
mv "$NEW" "$OUT"
echo "$OUT"
