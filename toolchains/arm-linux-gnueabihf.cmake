# Cross-compiles dsaga for 32-bit ARM Linux with hard float (Raspberry Pi 2/3/4 with a 32-bit
# OS) with Debian's arm-linux-gnueabihf-g++ over a Debian sysroot:
#   toolchains/make-sysroot.sh armhf BUILD/sysroot
#   cmake -S . -B BUILD -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake \
#         -DDSAGA_SYSROOT=BUILD/sysroot
# Debian's armhf baseline is ARMv7-A + VFPv3-D16 (Thumb-2): it does not run on ARMv6 boards
# (Raspberry Pi 1 and Zero, whose Raspberry Pi OS "armhf" is ARMv6): build on the board there.
# This is the target that catches unaligned FlatBuffers reads (VFP loads trap): keep it tested.
set(DSAGA_TRIPLE arm-linux-gnueabihf)
set(DSAGA_DEBIAN_ARCH armhf)
set(DSAGA_QEMU_NAME qemu-arm)
set(CMAKE_SYSTEM_PROCESSOR arm)
# GCC's ARM "parameter passing ... changed in GCC 7.1" notes concern linking with objects built
# by GCC < 7 only; everything here comes from one compiler release.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
