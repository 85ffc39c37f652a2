# Shared body of the Debian cross toolchain files (aarch64-linux-gnu.cmake,
# arm-linux-gnueabihf.cmake): the including file sets DSAGA_TRIPLE, DSAGA_DEBIAN_ARCH,
# CMAKE_SYSTEM_PROCESSOR and DSAGA_QEMU_NAME first.
#
# The sysroot is a Debian bookworm tree made by toolchains/make-sysroot.sh (never multiarch on
# the host). Give it as -DDSAGA_SYSROOT=DIR or in the environment as DSAGA_SYSROOT.
# The find-root modes and the emulator live here, never in CMakeLists.txt.

set(CMAKE_SYSTEM_NAME Linux)

# try_compile() projects re-read this file in a fresh scope: they see DSAGA_SYSROOT only through
# CMAKE_TRY_COMPILE_PLATFORM_VARIABLES and the environment (without both, configure fails with
# "CMAKE_CXX_COMPILER not set, after EnableLanguage").
if(NOT DSAGA_SYSROOT AND DEFINED ENV{DSAGA_SYSROOT})
  set(DSAGA_SYSROOT "$ENV{DSAGA_SYSROOT}")
endif()
if(NOT DSAGA_SYSROOT)
  message(FATAL_ERROR "${DSAGA_TRIPLE}: no sysroot. Make one with "
    "toolchains/make-sysroot.sh ${DSAGA_DEBIAN_ARCH} DIR and pass -DDSAGA_SYSROOT=DIR")
endif()
get_filename_component(DSAGA_SYSROOT "${DSAGA_SYSROOT}" ABSOLUTE)
if(NOT EXISTS "${DSAGA_SYSROOT}/usr/include/${DSAGA_TRIPLE}")
  message(FATAL_ERROR "${DSAGA_SYSROOT} is not a ${DSAGA_DEBIAN_ARCH} sysroot "
    "(no usr/include/${DSAGA_TRIPLE}): see toolchains/make-sysroot.sh")
endif()
set(ENV{DSAGA_SYSROOT} "${DSAGA_SYSROOT}")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DSAGA_SYSROOT)

set(CMAKE_SYSROOT "${DSAGA_SYSROOT}")
set(CMAKE_LIBRARY_ARCHITECTURE ${DSAGA_TRIPLE})
# Debian's cross compilers (crossbuild-essential-<arch>); overridable, e.g. by a versioned name.
if(NOT CMAKE_C_COMPILER)
  set(CMAKE_C_COMPILER ${DSAGA_TRIPLE}-gcc)
endif()
if(NOT CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER ${DSAGA_TRIPLE}-g++)
endif()

# Libraries, headers and CMake packages only from the sysroot; programs (flatc, pkg-config)
# only from the host: the sysroot's flatc, if any, is an ARM binary.
set(CMAKE_FIND_ROOT_PATH "${DSAGA_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (cppzmq's config falls back to it for libzmq): only the sysroot's .pc files, with
# their paths rewritten into the sysroot.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${DSAGA_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${DSAGA_SYSROOT}/usr/lib/${DSAGA_TRIPLE}/pkgconfig:${DSAGA_SYSROOT}/usr/lib/pkgconfig:${DSAGA_SYSROOT}/usr/share/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})

# Tests run the target's binaries through qemu-user with the sysroot's ld.so and libraries.
# Without qemu this is still a valid cross toolchain: ctest then cannot run the tests.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(DSAGA_QEMU NAMES ${DSAGA_QEMU_NAME}-static ${DSAGA_QEMU_NAME})
  if(DSAGA_QEMU)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${DSAGA_QEMU};-L;${DSAGA_SYSROOT}")
  endif()
endif()
