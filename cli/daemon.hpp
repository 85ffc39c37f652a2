// Pieces both daemons need around CLI11: the --config file is read before the other options
// (which override it), and SIGINT/SIGTERM ask the event loop to stop cleanly.
#pragma once

#include <atomic>
#include <csignal>
#include <cstring>
#include <string>

namespace dsaga::cli {

// The value of -c/--config FILE or --config=FILE, if any.
inline std::string find_config_arg(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) return argv[i + 1];
    if (a.rfind("--config=", 0) == 0) return a.substr(9);
  }
  return {};
}

// --help must work even when the configuration file is broken.
inline bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) return true;
  return false;
}

inline std::atomic<bool>& stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}

extern "C" inline void on_stop_signal(int) { stop_flag() = true; }

// After this, stop_flag() turns true on SIGINT or SIGTERM.
inline void install_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

}  // namespace dsaga::cli
