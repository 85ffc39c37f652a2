// Private: building messages from mixed values ("Update of agent 'a' for round ", 7, ...).
#pragma once

#include <sstream>
#include <string>

namespace dsaga {

// Concatenates its arguments as an ostream would print them; doubles with 17 digits, so a
// number in a message is the exact value that was rejected.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  s.precision(17);
  (s << ... << args);
  return s.str();
}

}  // namespace dsaga
