// libFuzzer target: the CSV parser (label first), with the default options (dense, ',', no
// header, f64) and with the other branch of each (sparse, header, ';', f32).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dsaga/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dsaga::parse_csv(text, "fuzz.csv");
  dsaga::ReadOptions o;
  o.force_sparse = true;
  o.csv_header = true;
  o.csv_delimiter = ';';
  o.precision = dsaga::Precision::f32;
  (void)dsaga::parse_csv(text, "fuzz.csv", o);
  return 0;
}
