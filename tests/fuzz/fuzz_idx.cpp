// libFuzzer target: the IDX parser (images + labels). Input layout: 2 bytes big-endian n, then
// n bytes of the images file, then the labels file (n is clamped to what is there), so one
// input mutates both files and their agreement (same count).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsaga/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t n = std::min<std::size_t>((std::size_t(data[0]) << 8) | data[1], size - 2);
  const char* p = reinterpret_cast<const char*>(data) + 2;
  const std::string_view images(p, n), labels(p + n, size - 2 - n);
  (void)dsaga::parse_idx(images, labels, "fuzz-images", "fuzz-labels");
  dsaga::ReadOptions o;
  o.force_sparse = true;
  o.precision = dsaga::Precision::f32;
  (void)dsaga::parse_idx(images, labels, "fuzz-images", "fuzz-labels", o);
  return 0;
}
