// Allocation counting for a test executable: global operator new/delete replaced with counting
// versions, and on glibc malloc/calloc/realloc interposed as well (Eigen allocates with
// std::malloc, not operator new), forwarding to glibc's own entry points. Include it from exactly
// one source file of an executable (each tests/unit/*_test.cpp is its own executable); the tests
// that use it also assert that the counter sees an allocation, so a no-allocation check cannot
// pass vacuously. Counting is on while g_counting is true.
//
// A sanitized build (DSAGA_SANITIZE: ASan, TSan) owns malloc and operator new itself: the
// counter is then compiled out, kCountsAllocations is false and the tests that need it skip.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DSAGA_ALLOC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DSAGA_ALLOC_SANITIZED 1
#endif
#endif

namespace {
#if defined(DSAGA_ALLOC_SANITIZED)
constexpr bool kCountsAllocations = false;
#else
constexpr bool kCountsAllocations = true;
#endif
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

#if !defined(DSAGA_ALLOC_SANITIZED)
namespace {
void note_allocation() {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if defined(__GLIBC__)
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void __libc_free(void* p);
void* malloc(std::size_t size) noexcept {
  note_allocation();
  return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
  note_allocation();
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t size) noexcept {
  note_allocation();
  return __libc_realloc(p, size);
}
void free(void* p) noexcept { __libc_free(p); }
}
#endif

void* operator new(std::size_t size) {
  note_allocation();
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  note_allocation();
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  note_allocation();
  return std::malloc(size ? size : 1);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  note_allocation();
  return std::malloc(size ? size : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif  // !DSAGA_ALLOC_SANITIZED
