// Huge-page advice for the memory the SAGA steps read at random (private to the library): the
// sparse step's per-coordinate records and the dense data. Only hints: every function here may
// do nothing, and no result depends on them. The one #if for the operating system is here, so
// that saga.cpp and dataset.cpp compile unchanged on every target (x86-64, aarch64, armhf;
// Linux or not).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dsaga {
namespace hint {

#if defined(__linux__) && defined(MADV_HUGEPAGE)
// madvise(advice) on the whole 2 MiB pages inside [begin, begin + bytes), if any; errors are
// ignored (it is advice).
inline void advise_whole_huge_pages(const void* begin, std::size_t bytes, int advice) {
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  const std::uintptr_t b = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t first = (b + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t last = (b + bytes) & ~(kHuge - 1);
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, advice);
}
#endif

// Asks the kernel to back the whole 2 MiB pages inside [begin, begin + bytes) with transparent
// huge pages. Why: the sparse step reads one record per non-zero at columns spread over all of
// d; with d = 2^20 the 32 MB of records span 8192 4 KiB pages, more than the TLB holds, so
// nearly every non-zero would also pay a page walk. 16 huge pages stay in the TLB. Call it
// before the range is first written (faults then take huge pages directly). Where transparent
// huge pages are off (or not Linux), this does nothing.
inline void huge_pages(void* begin, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  advise_whole_huge_pages(begin, bytes, MADV_HUGEPAGE);
#else
  (void)begin;
  (void)bytes;
#endif
}

// The same for memory that is already written: advises huge pages, then asks the kernel to
// collapse the range into huge pages now (MADV_COLLAPSE, Linux 6.1 and later; a one-off copy of
// the range). Why: the dense SAGA step reads a whole row at a random place in the data set; on
// 4 KiB pages nearly every row costs a TLB miss and a page walk (what that costs an epoch, and
// what the copy costs: bench/RESULTS.md, issue 6). Contents are unchanged; where
// the kernel cannot or will not (older kernel, transparent huge pages off, no memory), nothing
// happens and the data keeps its pages.
inline void huge_pages_now(const void* begin, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr int kCollapse = 25;  // MADV_COLLAPSE; glibc 2.36's <sys/mman.h> does not name it
  advise_whole_huge_pages(begin, bytes, MADV_HUGEPAGE);
  advise_whole_huge_pages(begin, bytes, kCollapse);
#else
  (void)begin;
  (void)bytes;
#endif
}

}  // namespace hint
}  // namespace dsaga
