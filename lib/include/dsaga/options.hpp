// One table per daemon names each of its options once: its [section] and key in the TOML file,
// its command-line flag and help, and the member of the configuration struct it sets. The TOML
// reader (config.cpp), the command line (cli/config_options.hpp) and the test that holds the
// annotated example files (config/*.toml) to the table all read the same rows, so they cannot
// drift apart. The default of an option is the member's value in a default-constructed
// configuration: the struct (config.hpp, hub.hpp) stays the one documented place for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "dsaga/status.hpp"

namespace dsaga {

// An enumeration (or any value written as one of a few words) read and written as text. set()
// fails with the parser's own message ("'x' is not an aggregation (auto, ...)"), which the
// caller prefixes with the key or flag.
struct TextRef {
  std::function<std::string()> get;
  std::function<Status(const std::string&)> set;
};

// An enum through its name functions, e.g. enum_ref(h.aggregation, parse_aggregation, to_string).
template <class E>
TextRef enum_ref(E& member, Result<E> (*parse)(const std::string&), const char* (*name)(E)) {
  return {[&member, name] { return std::string(name(member)); },
          [&member, parse](const std::string& text) {
            auto parsed = parse(text);
            if (!parsed) return Status::error(parsed.error());
            member = *parsed;
            return Status::ok();
          }};
}

// A byte count written in the file as MiB (transport.max_message_mb).
struct MebibyteRef {
  std::size_t* bytes;
};

// The member an option sets.
using OptionValue = std::variant<bool*, int*, std::int64_t*, std::uint64_t*, double*, std::string*,
                                 std::vector<double>*, TextRef, MebibyteRef>;

// What is checked beyond the member's type (integers are range-checked against it in a file;
// unsigned ones refuse a negative value on the command line too).
enum class OptionCheck : std::uint8_t {
  none,
  non_negative,  // the command line refuses a negative number; a file's is validate()'s to refuse
  zero_or_one,   // both refuse anything but 0 and 1
};

struct OptionSpec {
  const char* section;  // [section] of the TOML file
  const char* key;      // its key there; errors name the option "section.key"
  // Command-line names in CLI11's syntax ("--eta", "--progress,!--no-progress"); nullptr: the
  // option is read from the file only.
  const char* flag;
  const char* help;  // --help text (with flag)
  OptionValue value;
  OptionCheck check = OptionCheck::none;
};

// The value as the example files write it (strings unquoted, "nan", "[1, 2]").
std::string option_text(const OptionValue& value);

// The sections the rows name, in their order of first appearance.
std::vector<std::string> option_sections(const std::vector<OptionSpec>& options);

}  // namespace dsaga
