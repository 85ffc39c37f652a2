# A toolchain file modelled on the one oe-core's cmake class (meta/classes-recipe/cmake.bbclass)
# generates for a recipe, to check Yocto compatibility without bitbake
# (tests/qemu/yocto_style.sh). What matters, as in Yocto:
#   - two find roots: the target sysroot (STAGING_DIR_HOST) and the native sysroot
#     (STAGING_DIR_NATIVE, where flatc and pkg-config live), and every find mode ONLY, programs
#     included: nothing is found on the build host outside those roots;
#   - the sysroot reaches the compiler through its flags (--sysroot), not CMAKE_SYSROOT;
#   - the recipe's flags come in CMAKE_<LANG>_FLAGS; no emulator: nothing built for the target
#     may run during the build.
# Inputs (environment, as bitbake exports them to the configure step): OE_TARGET_ROOT,
# OE_NATIVE_ROOT, OE_TARGET_PREFIX (e.g. aarch64-linux-gnu-), OE_TARGET_CFLAGS.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
foreach(var OE_TARGET_ROOT OE_NATIVE_ROOT OE_TARGET_PREFIX)
  if(NOT DEFINED ENV{${var}})
    message(FATAL_ERROR "yocto-style.cmake: set ${var} in the environment")
  endif()
endforeach()
set(STAGING_DIR_HOST "$ENV{OE_TARGET_ROOT}")
set(STAGING_DIR_NATIVE "$ENV{OE_NATIVE_ROOT}")

set(CMAKE_C_COMPILER "$ENV{OE_TARGET_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "$ENV{OE_TARGET_PREFIX}g++")
set(CMAKE_AR "$ENV{OE_TARGET_PREFIX}ar" CACHE FILEPATH "Archiver")
set(CMAKE_C_FLAGS "--sysroot=${STAGING_DIR_HOST} $ENV{OE_TARGET_CFLAGS}" CACHE STRING "CFLAGS")
set(CMAKE_CXX_FLAGS "--sysroot=${STAGING_DIR_HOST} $ENV{OE_TARGET_CFLAGS} -fvisibility-inlines-hidden"
    CACHE STRING "CXXFLAGS")
set(CMAKE_C_FLAGS_RELEASE "-DNDEBUG" CACHE STRING "CFLAGS for release")
set(CMAKE_CXX_FLAGS_RELEASE "-DNDEBUG" CACHE STRING "CXXFLAGS for release")
set(CMAKE_C_LINK_FLAGS "--sysroot=${STAGING_DIR_HOST} -Wl,-O1 -Wl,--hash-style=gnu -Wl,--as-needed"
    CACHE STRING "LDFLAGS")
set(CMAKE_CXX_LINK_FLAGS "--sysroot=${STAGING_DIR_HOST} -Wl,-O1 -Wl,--hash-style=gnu -Wl,--as-needed"
    CACHE STRING "LDFLAGS")

# Only search in the paths provided so cmake doesn't pick up libraries and tools from the native
# build machine (oe-core's own comment).
set(CMAKE_FIND_ROOT_PATH ${STAGING_DIR_HOST} ${STAGING_DIR_NATIVE})
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_PROGRAM_PATH "/")

set(CMAKE_BUILD_RPATH_USE_ORIGIN ON)
# Debian's multiarch library directory plays the part of Yocto's ${libdir}.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_LIBRARY_PATH /usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu)
list(APPEND CMAKE_C_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
list(APPEND CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
