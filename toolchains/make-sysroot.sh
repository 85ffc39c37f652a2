#!/usr/bin/env bash
# Creates a Debian bookworm sysroot for cross-building dsaga: the target's headers and libraries
# extracted from Debian packages with mmdebstrap, without a foreign dpkg architecture on the
# host (see shared/CROSS.md: multiarch broke apt and paired mismatched ld.so/libc under qemu).
#
# Usage: toolchains/make-sysroot.sh ARCH DIR [kernel]
#   ARCH   arm64 or armhf (Debian names)
#   DIR    where the sysroot goes (outside the source tree: e.g. BUILD/sysroots/arm64)
#   kernel instead extracts only linux-image-ARCH and busybox-static (with what they depend on;
#          files only, no maintainer scripts run), for the full-system test under qemu-system:
#          the kernel is then DIR/boot/vmlinuz-*, its modules DIR/lib/modules/*, and
#          DIR/bin/busybox the target's shell for an initramfs. Use its own DIR.
# Needs: mmdebstrap (scripts/install-deps.sh cross). Runs as root or as a user with unshare.
# Idempotent: a DIR with a complete stamp for the same package list is kept as it is.
set -euo pipefail
arch=${1:?usage: make-sysroot.sh arm64|armhf DIR [kernel]}
dir=${2:?usage: make-sysroot.sh arm64|armhf DIR [kernel]}
what=${3:-}
case "$arch" in arm64|armhf) ;; *) echo "make-sysroot.sh: unknown arch '$arch'" >&2; exit 2 ;; esac

# Everything dsaga links against, plus what the static agent needs: libzmq3-dev brings libzmq.a
# and the static sodium, pgm, norm, bsd and md libraries; libc6-dev gives libc.a.
packages=libc6-dev,libstdc++-12-dev,libzmq3-dev,cppzmq-dev,libflatbuffers-dev,libeigen3-dev
packages+=,zlib1g-dev,libtomlplusplus-dev,libspdlog-dev,libfmt-dev,libcli11-dev
packages+=,libgtest-dev,libgmock-dev
if [ "$what" = kernel ]; then packages=linux-image-$arch,busybox-static; fi

stamp="$dir/.dsaga-sysroot"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$arch $packages" ]; then
  echo "make-sysroot.sh: $dir is up to date"
  exit 0
fi

# The host's own Debian mirror (first deb822 stanza: main + updates, never security, which has
# no foreign-architecture guarantee here); a plain mirror URL when the host has no such file.
# Nothing host-specific is written into the sysroot.
# mmdebstrap reads a deb822 stanza only from a file named *.sources.
rm -rf "$dir.tmp"
mkdir -p "$(dirname "$dir")"
mirror=$(mktemp "$(dirname "$dir")/mirror.XXXXXX.sources")
trap 'rm -f "$mirror"' EXIT
sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ]; then
  awk 'BEGIN { RS = "" } NR == 1 { print; exit }' "$sources" | grep -v '^#' >"$mirror"
else
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n' >"$mirror"
fi
# --variant=extract: unpack only, no maintainer scripts, host dpkg state untouched.
mmdebstrap --quiet --variant=extract --architectures="$arch" --include="$packages" \
  --skip=cleanup/apt --skip=output/mknod bookworm "$dir.tmp" "$mirror"
rm -rf "$dir.tmp/etc/apt" "$dir.tmp/var"

# Absolute symbolic links inside the sysroot (e.g. lib/ld-linux*.so -> /lib/...) point at the
# host once the sysroot is not /: make them relative so the cross linker and qemu -L find the
# target's files.
find "$dir.tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  rel=$(realpath -m --relative-to="$(dirname "$link")" "$dir.tmp$target")
  ln -sfn "$rel" "$link"
done

rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$arch $packages" >"$stamp"
echo "make-sysroot.sh: $arch sysroot in $dir ($(du -sh "$dir" | cut -f1))"
