// Pieces both daemons need around CLI11: the --config file is read before the other options
// (which override it), and SIGINT/SIGTERM ask the event loop to stop cleanly.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>

#include "dsaga/status.hpp"
#include "dsaga/version.hpp"

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

// The start of a daemon's command line: -h/--help, --version and -c/--config on `app`, and the
// --config file read into `config` with `load`. Call it before the options are bound to
// `config`: they then override the file, and --help shows the file's values as the defaults
// (it skips the file, which may be broken). The error names the file, line and key.
template <class Config, class Load>
Status read_config_file(CLI::App& app, int argc, char** argv, Load load, Config& config) {
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", DSAGA_VERSION);
  app.add_option("-c,--config", "TOML configuration file")->type_name("TEXT");
  const std::string path = find_config_arg(argc, argv);
  if (path.empty() || wants_help(argc, argv)) return Status::ok();
  auto loaded = load(path);
  if (!loaded) return loaded.status();
  config = std::move(*loaded);
  return Status::ok();
}

// Parses the command line. The exit status when the program ends here: --help, --version (0)
// or an option CLI11 refuses.
inline std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
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
