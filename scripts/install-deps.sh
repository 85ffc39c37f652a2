#!/usr/bin/env bash
# Installs the Debian packages dsaga needs to build, test and run its main job, and only the
# ones missing: a second call costs a dpkg query. Runs as root (or through sudo when present).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzmq3-dev cppzmq-dev libeigen3-dev libflatbuffers-dev flatbuffers-compiler zlib1g-dev
  libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libsystemd-dev   # the hub's metrics endpoint; sd_notify (both optional)
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist gnuplot-nox
  iproute2 iptables   # the network-fault test: namespaces, veth, packet loss
  liblinear-tools     # integration.predict_liblinear: liblinear-predict on exported models
  curl                # the metrics-endpoint test scrapes /metrics
)
# Extra sets, asked for by name: `install-deps.sh bench` adds scikit-learn (the other
# single-node reference solver; liblinear is in the base set) and valgrind (bench/profile_step.sh);
# `install-deps.sh cross` the ARM cross compilers, qemu (user and system) and mmdebstrap for the
# sysroots (see toolchains/ and tests/qemu/; no foreign dpkg architecture is ever added).
for extra in "$@"; do
  case "$extra" in
    bench) packages+=(python3-sklearn python3-numpy valgrind) ;;
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    cross) packages+=(crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static
                      qemu-system-arm mmdebstrap cpio gzip file) ;;
    *) echo "install-deps.sh: unknown package set '$extra' (known: bench, cross, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
