// Command-line options shared by the programs that load data (dsaga-agent, dsaga-reference,
// dsaga-predict): the rows of data_options() (config.hpp), so the same names, defaults, help and
// checks as the agent's [problem] and [data] keys. Header-only; CLI11 stays out of libdsaga.
#pragma once

#include <CLI/CLI.hpp>

#include "config_options.hpp"
#include "dsaga/config.hpp"

namespace dsaga::cli {

// Where --help lists the [data] options.
inline CLI::App* data_group(CLI::App& app) {
  return app.add_option_group("Data", "Where the data is and how to prepare it");
}

class DataOptions {
 public:
  // Binds to `spec` and `objective` (loss, classes), whose current values are the defaults.
  DataOptions(CLI::App& app, DataSpec& spec, Objective& objective)
      : options_(app, data_options(spec, objective), {{"data", data_group(app)}}) {}

  // After parsing: turns the words (loss, partition, precision, storage) into values. The error
  // names the option.
  Status apply() const { return options_.apply(); }

 private:
  ConfigOptions options_;
};

}  // namespace dsaga::cli
