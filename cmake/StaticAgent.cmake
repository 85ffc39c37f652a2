# DSAGA_STATIC_AGENT: a fully static dsaga-agent (glibc, libstdc++, ZeroMQ and the rest linked in)
# for boards whose C library is older than the one the build links against (JetPack 5: glibc
# 2.31; a dynamic agent built on Debian bookworm needs glibc >= 2.34).
#
# Debian ships static archives of libzmq and its dependencies (libsodium, libpgm, libnorm +
# libprotokit, libbsd, libmd), zlib and glibc, but not of:
#   - GSSAPI (krb5): libzmq.a references 11 gss_* functions and 2 OIDs. They are replaced by stubs
#     that fail, so a ZMQ_GSSAPI socket cannot be used; dsaga uses plain or CURVE security only.
#   - spdlog, fmt and toml++ (shared objects only): their compiled parts are rebuilt here from the
#     headers of the same packages, exactly what their own libraries compile (the "-inl.h"
#     implementation headers and the explicit instantiations).
# `pkg-config --static libzmq` cannot be used instead: it asks for a static krb5.
#
# How: the imported targets of those dependencies are pointed at static archives for the whole
# build directory (imported targets have one location per build tree, not one per consumer), so
# in a DSAGA_STATIC_AGENT build the other programs link these libraries statically too (but stay
# dynamically linked to glibc); only dsaga-agent is linked with -static. The library's objects
# are compiled exactly as in a dynamic build.
#
# Limits of a static glibc program: it cannot load NSS modules, so host names are not resolved
# (use numeric endpoints such as tcp://192.0.2.10:5555) and user names are not looked up.

include_guard(GLOBAL)

# _dsaga_static_archive(VAR NAME): the full path of libNAME.a from the (sys)root, or a clear error.
function(_dsaga_static_archive var name)
  find_library(DSAGA_STATIC_LIB_${name} NAMES lib${name}.a
               DOC "Static archive linked into the static dsaga-agent")
  if(NOT DSAGA_STATIC_LIB_${name})
    message(FATAL_ERROR "DSAGA_STATIC_AGENT: no static lib${name}.a found for ${CMAKE_SYSTEM_PROCESSOR}"
                        " (Debian: the -dev package of ${name}; or turn DSAGA_STATIC_AGENT off)")
  endif()
  set(${var} "${DSAGA_STATIC_LIB_${name}}" PARENT_SCOPE)
endfunction()

# _dsaga_point_imported_at(TARGET ARCHIVE [LINK...]): make an imported target link ARCHIVE (and
# then LINK...) instead of its shared object, for every configuration it was imported for.
function(_dsaga_point_imported_at tgt archive)
  if(NOT TARGET ${tgt})
    return()
  endif()
  get_target_property(imported ${tgt} IMPORTED)
  if(NOT imported)
    message(FATAL_ERROR "DSAGA_STATIC_AGENT: ${tgt} is not an imported target")
  endif()
  set_property(TARGET ${tgt} PROPERTY IMPORTED_LOCATION "${archive}")
  get_target_property(configs ${tgt} IMPORTED_CONFIGURATIONS)
  if(configs)
    foreach(config ${configs})
      string(TOUPPER "${config}" config)
      set_property(TARGET ${tgt} PROPERTY IMPORTED_LOCATION_${config} "${archive}")
      set_property(TARGET ${tgt} PROPERTY IMPORTED_SONAME_${config})
    endforeach()
  endif()
  set_property(TARGET ${tgt} PROPERTY IMPORTED_SONAME)
  if(ARGN)
    set_property(TARGET ${tgt} APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${ARGN})
  endif()
endfunction()

# The compiled parts of spdlog (with external fmt), fmt and toml++, and the GSSAPI stubs. Each
# source mirrors the library's own translation unit of the same name.
function(_dsaga_static_support_library)
  if(TARGET dsaga_static_support)
    return()
  endif()
  set(dir ${CMAKE_BINARY_DIR}/static-support)
  file(WRITE ${dir}/fmt_format.cpp [=[
// fmt 9's src/format.cc: the non-template implementation and the explicit instantiations that
// fmt/format.h declares extern.
#include <fmt/format-inl.h>
FMT_BEGIN_NAMESPACE
namespace detail {
template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(const char*, const char*);
template FMT_API void vformat_to(buffer<char>&, string_view,
                                 basic_format_args<FMT_BUFFER_CONTEXT(char)>, locale_ref);
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template FMT_API auto decimal_point_impl(locale_ref) -> wchar_t;
template FMT_API void buffer<wchar_t>::append(const wchar_t*, const wchar_t*);
}  // namespace detail
FMT_END_NAMESPACE
]=])
  file(WRITE ${dir}/spdlog_spdlog.cpp [=[
// spdlog 1.10's src/spdlog.cpp (compiled library mode, external fmt).
#include <spdlog/spdlog-inl.h>
#include <spdlog/common-inl.h>
#include <spdlog/details/backtracer-inl.h>
#include <spdlog/details/registry-inl.h>
#include <spdlog/details/os-inl.h>
#include <spdlog/pattern_formatter-inl.h>
#include <spdlog/details/log_msg-inl.h>
#include <spdlog/details/log_msg_buffer-inl.h>
#include <spdlog/logger-inl.h>
#include <spdlog/sinks/sink-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/details/null_mutex.h>
#include <mutex>
template SPDLOG_API spdlog::logger::logger(std::string name, sinks_init_list::iterator begin,
                                           sinks_init_list::iterator end);
template class SPDLOG_API spdlog::sinks::base_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::base_sink<spdlog::details::null_mutex>;
]=])
  file(WRITE ${dir}/spdlog_sinks.cpp [=[
// spdlog 1.10's src/stdout_sinks.cpp, color_sinks.cpp and file_sinks.cpp.
#include <mutex>
#include <spdlog/details/null_mutex.h>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks-inl.h>
#include <spdlog/sinks/ansicolor_sink-inl.h>
#include <spdlog/sinks/stdout_color_sinks-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/details/file_helper-inl.h>
#include <spdlog/sinks/basic_file_sink-inl.h>
#include <spdlog/sinks/rotating_file_sink-inl.h>
using spdlog::details::console_mutex;
using spdlog::details::console_nullmutex;
template class SPDLOG_API spdlog::sinks::stdout_sink_base<console_mutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink_base<console_nullmutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink<console_mutex>;
template class SPDLOG_API spdlog::sinks::stdout_sink<console_nullmutex>;
template class SPDLOG_API spdlog::sinks::stderr_sink<console_mutex>;
template class SPDLOG_API spdlog::sinks::stderr_sink<console_nullmutex>;
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stdout_logger_mt<spdlog::synchronous_factory>(const std::string&);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stdout_logger_st<spdlog::synchronous_factory>(const std::string&);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stderr_logger_mt<spdlog::synchronous_factory>(const std::string&);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stderr_logger_st<spdlog::synchronous_factory>(const std::string&);
template class SPDLOG_API spdlog::sinks::ansicolor_sink<console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_sink<console_nullmutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stdout_sink<console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stdout_sink<console_nullmutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stderr_sink<console_mutex>;
template class SPDLOG_API spdlog::sinks::ansicolor_stderr_sink<console_nullmutex>;
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stdout_color_mt<spdlog::synchronous_factory>(const std::string&, spdlog::color_mode);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stdout_color_st<spdlog::synchronous_factory>(const std::string&, spdlog::color_mode);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stderr_color_mt<spdlog::synchronous_factory>(const std::string&, spdlog::color_mode);
template SPDLOG_API std::shared_ptr<spdlog::logger>
spdlog::stderr_color_st<spdlog::synchronous_factory>(const std::string&, spdlog::color_mode);
template class SPDLOG_API spdlog::sinks::basic_file_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::basic_file_sink<spdlog::details::null_mutex>;
template class SPDLOG_API spdlog::sinks::rotating_file_sink<std::mutex>;
template class SPDLOG_API spdlog::sinks::rotating_file_sink<spdlog::details::null_mutex>;
]=])
  file(WRITE ${dir}/spdlog_async.cpp [=[
// spdlog 1.10's src/async.cpp and cfg.cpp.
#include <spdlog/async.h>
#include <spdlog/async_logger-inl.h>
#include <spdlog/details/periodic_worker-inl.h>
#include <spdlog/details/thread_pool-inl.h>
#include <spdlog/cfg/helpers-inl.h>
template class SPDLOG_API spdlog::details::mpmc_blocking_queue<spdlog::details::async_msg>;
]=])
  file(WRITE ${dir}/toml.cpp [=[
// toml++ 3's src/toml.cpp: the implementation of the compiled (TOML_HEADER_ONLY=0) library.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
]=])
  file(WRITE ${dir}/gssapi_stubs.cpp [=[
// GSSAPI stubs for a fully static libzmq (Debian ships no static krb5). Every call that would
// establish a security context fails with GSS_S_FAILURE, so a ZMQ_GSSAPI socket cannot
// authenticate; release calls succeed and clear the handle, so cleanup paths stay correct.
// C linkage: only the names and an ABI-compatible argument list matter.
#include <cstddef>
#include <cstdint>
typedef std::uint32_t OM_uint32;
namespace {
constexpr OM_uint32 kGssFailure = OM_uint32{13} << 16;  // GSS_S_FAILURE
OM_uint32 fail(OM_uint32* minor) {
  if (minor != nullptr) *minor = 0;
  return kGssFailure;
}
OM_uint32 release(OM_uint32* minor, void** handle) {
  if (minor != nullptr) *minor = 0;
  if (handle != nullptr) *handle = nullptr;
  return 0;
}
}  // namespace
extern "C" {
void* GSS_C_NT_HOSTBASED_SERVICE = nullptr;
void* GSS_C_NT_USER_NAME = nullptr;
OM_uint32 gss_accept_sec_context(OM_uint32* m, void** a, void* b, void* c, void* d, void** e,
                                 void** f, void* g, OM_uint32* h, OM_uint32* i, void** j) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h; (void)i; (void)j;
  return fail(m);
}
OM_uint32 gss_acquire_cred(OM_uint32* m, void* a, OM_uint32 b, void* c, int d, void** e,
                           void** f, OM_uint32* g) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g;
  return fail(m);
}
OM_uint32 gss_init_sec_context(OM_uint32* m, void* a, void** b, void* c, void* d, OM_uint32 e,
                               OM_uint32 f, void* g, void* h, void** i, void* j, OM_uint32* k,
                               OM_uint32* l) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h; (void)i; (void)j;
  (void)k; (void)l;
  return fail(m);
}
OM_uint32 gss_display_name(OM_uint32* m, void* a, void* b, void** c) {
  (void)a; (void)b; (void)c;
  return fail(m);
}
OM_uint32 gss_import_name(OM_uint32* m, void* a, void* b, void** c) {
  (void)a; (void)b; (void)c;
  return fail(m);
}
OM_uint32 gss_wrap(OM_uint32* m, void* a, int b, OM_uint32 c, void* d, int* e, void* f) {
  (void)a; (void)b; (void)c; (void)d; (void)e; (void)f;
  return fail(m);
}
OM_uint32 gss_unwrap(OM_uint32* m, void* a, void* b, void* c, int* d, OM_uint32* e) {
  (void)a; (void)b; (void)c; (void)d; (void)e;
  return fail(m);
}
OM_uint32 gss_delete_sec_context(OM_uint32* m, void** ctx, void* out) {
  (void)out;
  return release(m, ctx);
}
OM_uint32 gss_release_buffer(OM_uint32* m, void* buffer) {
  (void)buffer; /* never filled by these stubs */
  return release(m, nullptr);
}
OM_uint32 gss_release_cred(OM_uint32* m, void** cred) { return release(m, cred); }
OM_uint32 gss_release_name(OM_uint32* m, void** name) { return release(m, name); }
}  // extern "C"
]=])
  add_library(dsaga_static_support STATIC
    ${dir}/fmt_format.cpp ${dir}/spdlog_spdlog.cpp ${dir}/spdlog_sinks.cpp
    ${dir}/spdlog_async.cpp ${dir}/toml.cpp ${dir}/gssapi_stubs.cpp)
  # The definitions the packages' own libraries were built with (see their CMake exports).
  target_compile_definitions(dsaga_static_support PRIVATE
    SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL TOML_HEADER_ONLY=0)
  target_compile_features(dsaga_static_support PRIVATE cxx_std_17)
  foreach(imported spdlog::spdlog fmt::fmt tomlplusplus::tomlplusplus)
    target_include_directories(dsaga_static_support PRIVATE
      $<TARGET_PROPERTY:${imported},INTERFACE_INCLUDE_DIRECTORIES>)
  endforeach()
  # Third-party code compiled as its authors do: their warnings are not ours to fix.
  target_compile_options(dsaga_static_support PRIVATE -w)
  set_target_properties(dsaga_static_support PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    ARCHIVE_OUTPUT_DIRECTORY ${dir})
endfunction()

# dsaga_make_static(TARGET): link TARGET (an executable) fully statically.
function(dsaga_make_static tgt)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    message(FATAL_ERROR "DSAGA_STATIC_AGENT: needs GCC and glibc's static libraries")
  endif()
  _dsaga_static_support_library()
  set(support ${CMAKE_BINARY_DIR}/static-support/libdsaga_static_support.a)

  _dsaga_static_archive(zmq zmq)
  set(zmq_deps "")
  # libzmq's private dependencies, in link order (libnorm needs libprotokit, libbsd needs libmd).
  foreach(name sodium pgm norm protokit bsd md)
    _dsaga_static_archive(archive ${name})
    list(APPEND zmq_deps "${archive}")
  endforeach()
  _dsaga_static_archive(z z)

  # libzmq: cppzmq's pkg-config fallback (Debian) defines `libzmq`; ZeroMQ's CMake package
  # (Yocto, upstream) defines `libzmq` and `libzmq-static`.
  _dsaga_point_imported_at(libzmq "${zmq}" ${zmq_deps} dsaga_static_support Threads::Threads rt)
  _dsaga_point_imported_at(ZLIB::ZLIB "${z}")
  # The packages' shared libraries are replaced by the rebuilt compiled parts. Naming the real
  # target in the link interface also orders the build (the archive exists before any link).
  foreach(imported spdlog::spdlog fmt::fmt tomlplusplus::tomlplusplus)
    _dsaga_point_imported_at(${imported} "${support}" dsaga_static_support)
  endforeach()

  target_link_options(${tgt} PRIVATE -static)
  # Statically linked programs cannot use $ORIGIN-relative or build-tree rpaths.
  set_target_properties(${tgt} PROPERTIES BUILD_WITH_INSTALL_RPATH ON INSTALL_RPATH "")
endfunction()
