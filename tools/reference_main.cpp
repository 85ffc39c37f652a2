// dsaga-reference: the full-batch reference solver (Newton or L-BFGS) that gives F* = min F, so
// that runs can report relative suboptimality (F - F*) / F*. Loads data with the same options
// as dsaga-agent (without --shards it uses the whole data set).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "data_options.hpp"
#include "dsaga/data_source.hpp"
#include "dsaga/files.hpp"
#include "dsaga/model.hpp"
#include "dsaga/reference.hpp"
#include "dsaga/report.hpp"
#include "dsaga/version.hpp"

int main(int argc, char** argv) try {
  using namespace dsaga;
  DataSpec spec;
  Objective objective;
  ReferenceOptions options;
  std::string method = "auto", model, out;
  bool quiet = false;
  CLI::App app{"dsaga-reference " DSAGA_VERSION ": computes F* = min_w F(w) to a gradient norm "
               "of --tolerance with Newton's method (small d*C) or L-BFGS, and prints it."};
  app.set_version_flag("--version", DSAGA_VERSION);
  cli::DataOptions data(app, spec, objective);
  app.add_option("--lambda", objective.lambda, "L2 regularisation")->required();
  app.add_option("--tolerance", options.gradient_tolerance, "Stop at ||grad F||_2 <= this")
      ->capture_default_str();
  app.add_option("--max-iterations", options.max_iterations, "Iteration cap")->capture_default_str();
  app.add_option("--method", method, "auto, newton or lbfgs")->capture_default_str();
  app.add_option("--model", model, "Write the optimal w here (model.hpp format, data options recorded)");
  app.add_option("--output", out, "Write F* (one line, %.17g) to this file");
  app.add_flag("-q,--quiet", quiet, "No progress lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (const Status s = data.apply(); !s) {
    std::fprintf(stderr, "dsaga-reference: %s\n", s.message().c_str());
    return 2;
  }
  if (method == "auto") options.method = ReferenceOptions::Method::automatic;
  else if (method == "newton") options.method = ReferenceOptions::Method::newton;
  else if (method == "lbfgs") options.method = ReferenceOptions::Method::lbfgs;
  else {
    std::fprintf(stderr, "dsaga-reference: --method: '%s', expected auto, newton or lbfgs\n",
                 method.c_str());
    return 2;
  }
  auto dataset = load_data(spec, objective);
  if (!dataset) {
    std::fprintf(stderr, "dsaga-reference: %s\n", dataset.error().c_str());
    return 1;
  }
  if (!quiet) {
    std::fprintf(stderr, "dsaga-reference: %s, %lld x %lld, %s, lambda %.6g\n",
                 dataset->source.c_str(), static_cast<long long>(dataset->rows()),
                 static_cast<long long>(dataset->cols()), to_string(objective.loss),
                 objective.lambda);
    options.progress = [](int it, double f, double g) {
      std::fprintf(stderr, "  iteration %4d  F = %.17g  ||grad F|| = %.3e\n", it, f, g);
    };
  }
  auto result = solve_reference(*dataset, objective, options);
  if (!result) {
    std::fprintf(stderr, "dsaga-reference: %s\n", result.error().c_str());
    return 1;
  }
  std::printf("%.17g\n", result->value);
  if (!quiet)
    std::fprintf(stderr, "dsaga-reference: F* = %.17g (%s, %d iterations, ||grad F|| = %.3e)\n",
                 result->value, result->method.c_str(), result->iterations, result->gradient_norm);
  if (!out.empty()) {
    char line[64];
    std::snprintf(line, sizeof line, "%.17g\n", result->value);
    if (const Status s = write_file_atomic(out, line); !s) {
      std::fprintf(stderr, "dsaga-reference: %s\n", s.message().c_str());
      return 1;
    }
  }
  if (!model.empty()) {
    // The reference loads the data itself, so unlike the hub it records the data options.
    Model m;
    m.objective = objective;
    m.features = dataset->cols();
    m.w = result->w;
    m.objective_value = result->value;
    m.data_recorded = true;
    m.data = DataTransform{spec.scale, spec.normalize_rows, spec.bias, spec.positive};
    if (const Status s = save_model(model, m); !s) {
      std::fprintf(stderr, "dsaga-reference: %s\n", s.message().c_str());
      return 1;
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-reference: internal error: %s\n", e.what());
  return 70;
}
