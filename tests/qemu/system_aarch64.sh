#!/usr/bin/env bash
# Full-system smoke test: Debian's arm64 kernel boots under qemu-system-aarch64 (TCG, -M virt,
# cortex-a72) into a busybox initramfs whose /init brings up virtio networking and runs the
# *static* aarch64 dsaga-agent. The guest reaches exactly one host port, the native hub's on
# 127.0.0.1, through user-mode networking (guestfwd 10.0.2.100:5555, restrict=on: nothing else).
# Checks: the hub admits the guest's agent and completes its rounds (>= 1), both exit 0, and the
# guest reports the agent's exit status 0 before powering off.
# Usage: system_aarch64.sh HUB STATIC_AGENT_AARCH64 KERNEL_ROOT
#   KERNEL_ROOT: made by `toolchains/make-sysroot.sh arm64 DIR kernel` (kernel, modules, busybox)
HUB=$1 AGENT=$2 KROOT=$3
source "$(dirname "$0")/../integration/lib.sh"

command -v qemu-system-aarch64 >/dev/null || fail "qemu-system-aarch64 not installed (install-deps.sh cross)"
file -b "$AGENT" | grep -q 'statically linked' || fail "$AGENT is not a static executable"
KERNEL=$(ls "$KROOT"/boot/vmlinuz-* | head -n 1)
[ -f "$KERNEL" ] || fail "no kernel in $KROOT/boot"
MODDIR=$(ls -d "$KROOT"/lib/modules/* | head -n 1)
FMNIST=/usr/share/datasets/fashion-mnist

# --- initramfs: busybox, the agent, 6 modules, 200 Fashion-MNIST test images ---------------------
R=$WORK/root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,modules,data}
cp "$KROOT/bin/busybox" "$R/bin/busybox"
cp "$AGENT" "$R/bin/dsaga-agent"
# virtio-net over PCI: these, in this order (each depends on the ones before).
for m in virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  f=$(find "$MODDIR" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || fail "module $m not in $MODDIR"
  case "$f" in
    *.ko) cp "$f" "$R/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$R/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$R/modules/$m.ko" ;;
    *) fail "unknown module format $f" ;;
  esac
done
cp "$FMNIST"/t10k-images-idx3-ubyte.gz "$FMNIST"/t10k-labels-idx1-ubyte.gz "$R/data/"
cat >"$R/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  insmod /modules/$m.ko || echo "guest: insmod $m failed"
done
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
echo "guest: network up, starting the agent"
/bin/dsaga-agent --config /agent.toml --hub tcp://10.0.2.100:5555 --id vm-aarch64 --format fashion-mnist \
  --data /data --split test --limit 200 --scale 0.00392156862745098 --normalize --bias \
  --positive 0,2,4,6 --give-up 60
echo "guest: agent exit status $?"
poweroff -f
INIT
chmod +x "$R/init"
# 10.0.2.100 is not a loopback address: an agent with CurveZMQ refuses clear text there unless
# its configuration says `[security] allow_plaintext = true` (safe here: the only path from the
# guest is qemu's forward to the host's loopback). Ask the agent itself, under qemu-user, whether
# it takes that key: its configuration is read before anything else, and /nonexistent makes it
# stop right after.
QEMU_A64=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64 not installed"
printf '[security]\nallow_plaintext = true\n' >"$R/agent.toml"
probe=$(timeout 60 "$QEMU_A64" "$AGENT" --config "$R/agent.toml" --data /nonexistent 2>&1 || true)
if echo "$probe" | grep -q allow_plaintext; then
  # Rejected. An agent whose transport refuses clear text names the key in its refusal message;
  # one without that string (before CurveZMQ) sends clear text anywhere and needs no key.
  if grep -q allow_plaintext "$AGENT"; then
    echo "SKIP: this agent refuses clear text to the guest's hub address 10.0.2.100 (not loopback)"
    echo "      but its configuration cannot allow it: [security] allow_plaintext is rejected:"
    echo "      $probe"
    echo "      Needs read_transport() in lib/src/config.cpp to read allow_plaintext into"
    echo "      TransportOptions::allow_plaintext (issue 5 report)."
    exit 77
  fi
  : >"$R/agent.toml"
fi
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

# --- hub on the host loopback --------------------------------------------------------------------
"$HUB" --listen 'tcp://127.0.0.1:*' --endpoint-file "$WORK/endpoint" --agents 1 --lambda 1e-3 \
  --max-rounds 3 --seed 5 --metrics "$WORK/metrics.csv" --model "$WORK/model.txt" \
  --no-progress >"$WORK/hub.log" 2>&1 &
HUB_PID=$!; PIDS+=($HUB_PID)
wait_for_file "$WORK/endpoint" 20
PORT=$(cat "$WORK/endpoint"); PORT=${PORT##*:}
echo "hub on 127.0.0.1:$PORT"

start=$(date +%s)
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 1 -m 512 -nographic -no-reboot \
  -kernel "$KERNEL" -initrd "$WORK/initrd.gz" -append "console=ttyAMA0 quiet panic=-1" \
  -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5555-tcp:127.0.0.1:$PORT" \
  -device virtio-net-pci,netdev=n0,romfile= >"$WORK/guest.log" 2>&1 </dev/null &
VM_PID=$!; PIDS+=($VM_PID)

# The guest powers off when its agent exits: if that happens before the hub is done, the hub
# would wait for an agent forever, so fail at once (after a short grace for the last messages).
i=0
while kill -0 $HUB_PID 2>/dev/null && kill -0 $VM_PID 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 2400 ] && fail "no result after 240 s"
  sleep 0.1
done
if kill -0 $HUB_PID 2>/dev/null; then
  wait_pid $HUB_PID 10 || fail "hub exited with status $?"
fi
wait_pid $HUB_PID 1 || fail "hub exited with status $?"
wait_pid $VM_PID 60 || fail "qemu-system-aarch64 exited with status $?"
echo "guest booted, trained and powered off in $(( $(date +%s) - start )) s"
grep -q 'guest: agent exit status 0' "$WORK/guest.log" || { cat "$WORK/guest.log"; fail "the guest's agent did not exit 0"; }
rounds=$(awk -F, 'NR > 1 { n = $1 } END { print n + 0 }' "$WORK/metrics.csv")
[ "$rounds" -ge 1 ] || fail "no round completed"
grep -q '^format dsaga-model-2' "$WORK/model.txt" || fail "no model written"
echo "rounds completed: $rounds"
echo PASS
