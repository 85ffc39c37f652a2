# Cross-compiles dsaga for 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS, Jetson) with
# Debian's aarch64-linux-gnu-g++ over a Debian sysroot:
#   toolchains/make-sysroot.sh arm64 BUILD/sysroot
#   cmake -S . -B BUILD -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake \
#         -DDSAGA_SYSROOT=BUILD/sysroot
# No -march/-mcpu is forced: the Debian baseline (armv8-a) runs on every 64-bit board.
set(DSAGA_TRIPLE aarch64-linux-gnu)
set(DSAGA_DEBIAN_ARCH arm64)
set(DSAGA_QEMU_NAME qemu-aarch64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-cross.cmake)
