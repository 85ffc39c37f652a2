// Memory hints for the sparse SAGA step (private to the library): which pages back the
// per-coordinate records. Only hints: every function here may do nothing, and no result
// depends on them. The one #if for the operating system is here, so that saga.cpp compiles
// unchanged on every target (x86-64, aarch64, armhf; Linux or not).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dsaga {
namespace hint {

// Asks the kernel to back the whole 2 MiB pages inside [begin, begin + bytes) with transparent
// huge pages. Why: the sparse step reads one record per non-zero at columns spread over all of
// d; with d = 2^20 the 32 MB of records span 8192 4 KiB pages, more than the TLB holds, so
// nearly every non-zero would also pay a page walk. 16 huge pages stay in the TLB. Call it
// before the range is first written (faults then take huge pages directly). Where transparent
// huge pages are off (or not Linux), this does nothing; errors are ignored (it is advice).
inline void huge_pages(void* begin, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  const std::uintptr_t b = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t first = (b + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t last = (b + bytes) & ~(kHuge - 1);
  if (last > first) {
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#else
  (void)begin;
  (void)bytes;
#endif
}

}  // namespace hint
}  // namespace dsaga
