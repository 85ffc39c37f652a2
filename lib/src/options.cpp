// Option tables (options.hpp): what every consumer of a table needs besides the rows.
#include "dsaga/options.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dsaga {

namespace {

// The shortest decimal text that reads back as the same double ("0.1", not
// "0.10000000000000001"); "nan" and "inf" as TOML writes them.
std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace

std::string option_text(const OptionValue& value) {
  struct Text {
    std::string operator()(bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(int* v) const { return std::to_string(*v); }
    std::string operator()(std::int64_t* v) const { return std::to_string(*v); }
    std::string operator()(std::uint64_t* v) const { return std::to_string(*v); }
    std::string operator()(double* v) const { return number_text(*v); }
    std::string operator()(std::string* v) const { return *v; }
    std::string operator()(std::vector<double>* v) const {
      std::string text = "[";
      for (std::size_t i = 0; i < v->size(); ++i)
        text += (i ? ", " : "") + number_text((*v)[i]);
      return text + "]";
    }
    std::string operator()(const TextRef& v) const { return v.get(); }
    std::string operator()(const MebibyteRef& v) const {
      return number_text(static_cast<double>(*v.bytes) / (1 << 20));
    }
  };
  return std::visit(Text{}, value);
}

std::vector<std::string> option_sections(const std::vector<OptionSpec>& options) {
  std::vector<std::string> sections;
  for (const OptionSpec& o : options)
    if (std::find(sections.begin(), sections.end(), o.section) == sections.end())
      sections.push_back(o.section);
  return sections;
}

}  // namespace dsaga
