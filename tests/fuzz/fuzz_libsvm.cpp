// libFuzzer target: the LIBSVM/SVMlight text parser, with the default options (sparse, 1-based,
// f64) and with the other branch of each (dense, 0-based, f32, fixed dimension).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsaga/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dsaga::parse_libsvm(text, "fuzz.svm");
  dsaga::ReadOptions o;
  o.force_dense = true;
  o.zero_based = true;
  o.precision = dsaga::Precision::f32;
  o.features = 64;
  o.max_dense_entries = 1 << 20;  // the bound itself is what is exercised, not 16 GB of RAM
  (void)dsaga::parse_libsvm(text, "fuzz.svm", o);
  return 0;
}
