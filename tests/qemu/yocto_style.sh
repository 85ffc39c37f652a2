#!/usr/bin/env bash
# Yocto compatibility without bitbake: configures, builds and installs dsaga for aarch64 the way
# oe-core's cmake class does (toolchains/yocto-style.cmake: two find roots, every find mode ONLY,
# no emulator; its command-line arguments: relative install dirs, FETCHCONTENT_FULLY_DISCONNECTED,
# the recipe's own flags; pkg-config confined to the target root as the pkgconfig class does).
# flatc and pkg-config come from a separate native root, as from flatbuffers-native. The build
# tool is named on the command line, as the cmake class does (-G ... -DCMAKE_MAKE_PROGRAM=...):
# with every find mode ONLY, CMake could not find it on the host by itself.
# Checks: configure and build succeed with nothing found outside the two roots; the flatc used
# is the native root's; the installed programs are aarch64 ELF files with no build path in their
# run path; the unit tests build (ptest) without any target binary being run.
# Usage: yocto_style.sh SOURCE ARM64_DEBIAN_SYSROOT WORKDIR
SRC=$1 DEBIAN_ROOT=$2 B=$3
source "$(dirname "$0")/../integration/lib.sh"
[ -d "$DEBIAN_ROOT/usr/include/aarch64-linux-gnu" ] || fail "$DEBIAN_ROOT is not an arm64 sysroot"

# The target root as Yocto stages it for a recipe: the headers, libraries and data of the target
# packages, never their programs (bindir is staged for native recipes only), and, as meta-oe's
# flatbuffers recipe does, no FlatcTargets*.cmake naming a flatc that is not there. The Debian
# sysroot has both (its usr/bin/flatc is an ARM program): a view of it without them stands in
# (usr/lib mirrored as symbolic links to each file, so that two files can be left out).
TARGET_ROOT=$WORK/recipe-sysroot
mkdir -p "$TARGET_ROOT/usr"
for d in usr/include usr/share lib; do
  [ -e "$DEBIAN_ROOT/$d" ] && ln -s "$DEBIAN_ROOT/$d" "$TARGET_ROOT/$d"
done
cp -as "$DEBIAN_ROOT/usr/lib" "$TARGET_ROOT/usr/lib"
rm -f "$TARGET_ROOT"/usr/lib/aarch64-linux-gnu/cmake/flatbuffers/FlatcTargets*.cmake

# The native root: only the host tools a recipe gets from -native recipes.
NATIVE=$WORK/recipe-sysroot-native
mkdir -p "$NATIVE/usr/bin"
for tool in flatc pkg-config; do
  ln -s "$(command -v $tool)" "$NATIVE/usr/bin/$tool" || fail "host $tool missing"
done
# The cross toolchain lives in the native root too (recipe-sysroot-native/usr/bin/<triple>/):
# CMake finds the compiler named by the toolchain file only there. Wrappers, not links: GCC
# locates its own cc1plus, as and ld from the path it was started by.
for tool in gcc g++ ar ranlib nm objcopy objdump readelf strip ld; do
  real=$(command -v aarch64-linux-gnu-$tool) || fail "host aarch64-linux-gnu-$tool missing"
  printf '#!/bin/sh\nexec %s "$@"\n' "$real" >"$NATIVE/usr/bin/aarch64-linux-gnu-$tool"
  chmod +x "$NATIVE/usr/bin/aarch64-linux-gnu-$tool"
done
export OE_TARGET_ROOT=$TARGET_ROOT OE_NATIVE_ROOT=$NATIVE OE_TARGET_PREFIX=aarch64-linux-gnu-
export OE_TARGET_CFLAGS="-O2 -pipe -g -feliminate-unused-debug-types"
# What the pkgconfig class exports.
export PKG_CONFIG_SYSROOT_DIR=$TARGET_ROOT
export PKG_CONFIG_LIBDIR=$TARGET_ROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$TARGET_ROOT/usr/share/pkgconfig
export PKG_CONFIG_PATH=$PKG_CONFIG_LIBDIR
export PKG_CONFIG_DISABLE_UNINSTALLED=yes
unset DSAGA_SYSROOT

rm -rf "$B"; mkdir -p "$B"
t0=$(date +%s)
cmake -S "$SRC" -B "$B/build" -Wno-dev \
  -DCMAKE_TOOLCHAIN_FILE="$SRC/toolchains/yocto-style.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_BINDIR=bin -DCMAKE_INSTALL_SBINDIR=sbin \
  -DCMAKE_INSTALL_LIBEXECDIR=libexec -DCMAKE_INSTALL_SYSCONFDIR=/etc \
  -DCMAKE_INSTALL_SHAREDSTATEDIR=../com -DCMAKE_INSTALL_LOCALSTATEDIR=/var \
  -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_INCLUDEDIR=include -DCMAKE_INSTALL_DATAROOTDIR=share \
  -DCMAKE_NO_SYSTEM_FROM_IMPORTED=1 -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON \
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON -DCMAKE_VERBOSE_MAKEFILE=1 \
  -G "Unix Makefiles" -DCMAKE_MAKE_PROGRAM="$(command -v make)" \
  -DBUILD_TESTING=ON >"$B/configure.log" 2>&1 || { cat "$B/configure.log"; fail "configure failed"; }
echo "configure: $(( $(date +%s) - t0 )) s"

flatc=$(sed -n 's/^FLATC_EXECUTABLE:FILEPATH=//p' "$B/build/CMakeCache.txt")
[ "$flatc" = "$NATIVE/usr/bin/flatc" ] || fail "flatc is '$flatc', not the native root's"
grep -q '^CMAKE_CROSSCOMPILING_EMULATOR' "$B/build/CMakeCache.txt" && fail "an emulator is set"
# Every library found is in the target root.
bad=$(grep -E '^[A-Za-z0-9_]+(_LIBRARY|_LIBRARIES|_INCLUDE_DIR)[A-Z_]*:(FILEPATH|PATH|STRING)=/' "$B/build/CMakeCache.txt" |
      grep -v "=$TARGET_ROOT" | grep -v "=$DEBIAN_ROOT" | grep -v -- '-NOTFOUND' || true)
[ -z "$bad" ] || fail "found outside the target root: $bad"

# The programs and one unit test (ptest builds them all the same way; the others are built by
# the qemu builds): never run, since there is no emulator.
t0=$(date +%s)
cmake --build "$B/build" -j2 --target dsaga-agent dsaga-hub dsaga-reference dsaga-keygen dsaga-predict dsaga_wire_test \
  >"$B/build.log" 2>&1 || { tail -n 60 "$B/build.log"; fail "build failed"; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -q -- '--sysroot=' "$B/build.log" || fail "the compiler was not given the sysroot"
grep -q -- '-march=native' "$B/build.log" && fail "-march=native forced"
grep -q -- '-Werror' "$B/build.log" && fail "-Werror forced"

DESTDIR="$B/image" cmake --install "$B/build" >"$B/install.log" 2>&1 ||
  { cat "$B/install.log"; fail "install failed"; }
for prog in dsaga-agent dsaga-hub dsaga-reference dsaga-keygen dsaga-predict; do
  f=$B/image/usr/bin/$prog
  [ -x "$f" ] || fail "$prog not installed in /usr/bin"
  file -b "$f" | grep -q 'ARM aarch64' || fail "$prog is not an aarch64 program: $(file -b "$f")"
  if aarch64-linux-gnu-readelf -d "$f" | grep -E 'RPATH|RUNPATH' | grep -q "$B"; then
    fail "$prog keeps a build-tree run path"
  fi
done
for f in usr/lib/libdsaga.a usr/lib/cmake/dsaga/dsagaConfig.cmake usr/lib/pkgconfig/dsaga.pc \
         usr/include/dsaga/version.hpp; do
  [ -e "$B/image/$f" ] || fail "$f not installed"
done
file -b "$B/build/tests/dsaga_wire_test" | grep -q 'ARM aarch64' || fail "wire test not built for aarch64"
strip_size=$(aarch64-linux-gnu-strip -o "$WORK/agent" "$B/image/usr/bin/dsaga-agent" && stat -c %s "$WORK/agent")
echo "dynamic aarch64 dsaga-agent: $strip_size B stripped"
echo PASS
