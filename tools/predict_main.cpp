// dsaga-predict: applies a model file (model.hpp) to data read with the same data options as
// dsaga-agent (cli/data_options.hpp), prints how well it predicts, writes per-row predictions,
// and exports logistic and least-squares models to liblinear's format.
//
// Output (stdout), "key value" lines: rows, then for logistic accuracy, log-loss and auc; for
// multinomial accuracy, log-loss and the confusion matrix (rows: true class, columns:
// predicted); for squared rmse and mse. --output writes liblinear-predict's layout: one
// predicted label per row, or with --probabilities a "labels ..." line and then the label and
// the probability of each class per row. Labels are the loss's: -1/+1 for logistic (+1 = the
// --positive labels), the raw class for multinomial, the prediction z for squared.
//
// Exit status: 0 done, 1 a model or data error (the message names the file and field), 2 bad
// options, 70 an internal error.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "data_options.hpp"
#include "dsaga/data_source.hpp"
#include "dsaga/files.hpp"
#include "dsaga/model.hpp"
#include "dsaga/report.hpp"
#include "dsaga/version.hpp"

namespace {

using namespace dsaga;

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string labels_text(const std::vector<double>& labels) {
  if (labels.empty()) return "default";
  std::string s;
  for (std::size_t i = 0; i < labels.size(); ++i) s += (i ? "," : "") + number(labels[i]);
  return s;
}

// The options given must say what the model says: the loss and classes always, the data
// options when the model recorded them. Each error names the option and the model's field.
Status check_options(const CLI::App& app, const Model& m, const std::string& path,
                     const Objective& given, const DataSpec& spec) {
  const std::string at = " (" + path + ")";
  if (app.count("--loss") > 0 && given.loss != m.objective.loss)
    return Status::error(std::string("--loss ") + to_string(given.loss) + ": the model" + at +
                         " has loss " + to_string(m.objective.loss));
  if (app.count("--classes") > 0 && given.classes != m.objective.classes)
    return Status::error("--classes " + std::to_string(given.classes) + ": the model" + at +
                         " has classes " + std::to_string(m.objective.classes));
  if (!m.data_recorded) return Status::ok();
  const std::string trained = " was trained with ";
  if (spec.scale != m.data.scale)
    return Status::error("--scale " + number(spec.scale) + ": the model" + at + trained +
                         "scale " + number(m.data.scale));
  if (spec.normalize_rows != m.data.normalize_rows)
    return Status::error("--normalize " + yes_no(spec.normalize_rows) + ": the model" + at +
                         trained + "normalize " + yes_no(m.data.normalize_rows));
  if (spec.bias != m.data.bias)
    return Status::error("--bias " + yes_no(spec.bias) + ": the model" + at + trained + "bias " +
                         yes_no(m.data.bias));
  if (m.objective.loss == Loss::logistic) {
    std::vector<double> a = spec.positive, b = m.data.positive;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b)
      return Status::error("--positive " + labels_text(spec.positive) + ": the model" + at +
                           trained + "positive " + labels_text(m.data.positive));
  }
  return Status::ok();
}

// Columns of the prepared data against the model's width, with the likely cause.
Status check_width(const Dataset& data, const Model& m, const std::string& path,
                   const DataSpec& spec) {
  const Index d = data.cols(), D = m.features;
  if (d == D) return Status::ok();
  std::string hint;
  if (d + 1 == D && !spec.bias) hint = "; was it trained with --bias?";
  else if (d == D + 1 && spec.bias) hint = "; was it trained without --bias?";
  else if (d < D) hint = "; a LIBSVM file whose highest index is lower needs --features " +
                         std::to_string(D - (spec.bias ? 1 : 0));
  return Status::error(data.source + ": " + std::to_string(d) + " columns after the data options" +
                       (spec.bias ? " (bias included)" : "") + ", but the model (" + path +
                       ") has features " + std::to_string(D) + hint);
}

// Area under the ROC curve of the scores against y in {-1,+1} (Mann-Whitney, ties counted
// half); NaN when one class is absent.
double auc(const std::vector<double>& score, const Eigen::VectorXd& y) {
  std::vector<Index> order(score.size());
  std::iota(order.begin(), order.end(), Index(0));
  std::sort(order.begin(), order.end(), [&](Index a, Index b) { return score[a] < score[b]; });
  double rank_sum = 0.0, positives = 0.0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && score[order[j]] == score[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + 1 + j);  // mean of ranks i+1..j
    for (std::size_t k = i; k < j; ++k)
      if (y[order[k]] > 0) {
        rank_sum += rank;
        positives += 1.0;
      }
    i = j;
  }
  const double negatives = static_cast<double>(score.size()) - positives;
  if (positives == 0.0 || negatives == 0.0) return NAN;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

// Predictions and their quality over `data` (labels prepared for the model's loss); `offset`
// turns a class index back into the raw label (multinomial).
struct Evaluation {
  std::string report;  // the stdout lines
  std::string rows;    // the --output file
};

Evaluation evaluate(const Dataset& data, const Model& m, double offset, bool probabilities) {
  const Objective& obj = m.objective;
  const int C = obj.classes;
  const Index n = data.rows();
  std::vector<double> z(static_cast<std::size_t>(C)), p(static_cast<std::size_t>(C));
  std::vector<double> scores;
  std::vector<Index> confusion;
  if (obj.loss == Loss::logistic) scores.resize(static_cast<std::size_t>(n));
  if (obj.loss == Loss::multinomial) confusion.assign(static_cast<std::size_t>(C) * C, 0);
  Index correct = 0;
  double loss = 0.0, squared_error = 0.0;
  Evaluation e;
  if (probabilities) {
    e.rows = "labels";
    if (obj.loss == Loss::logistic) e.rows += " 1 -1";
    for (int c = 0; obj.loss == Loss::multinomial && c < C; ++c) e.rows += " " + number(c + offset);
    e.rows += "\n";
  }
  for (Index i = 0; i < n; ++i) {
    const double y = data.y[i];
    std::fill(z.begin(), z.end(), 0.0);
    margins(data, i, m.w, z.data());
    loss += sample_loss(obj, y, z.data());
    std::string line;
    switch (obj.loss) {
      case Loss::logistic: {
        // liblinear's rule: +1 only when z > 0.
        const double label = z[0] > 0 ? 1.0 : -1.0;
        correct += label == y;
        scores[static_cast<std::size_t>(i)] = z[0];
        line = label > 0 ? "1" : "-1";
        if (probabilities) {
          const double p1 = z[0] >= 0 ? 1.0 / (1.0 + std::exp(-z[0]))
                                      : std::exp(z[0]) / (1.0 + std::exp(z[0]));
          line += " " + number(p1) + " " + number(1.0 - p1);
        }
        break;
      }
      case Loss::multinomial: {
        const int best = static_cast<int>(std::max_element(z.begin(), z.end()) - z.begin());
        const int truth = static_cast<int>(y);
        correct += best == truth;
        ++confusion[static_cast<std::size_t>(truth) * C + best];
        line = number(best + offset);
        if (probabilities) {
          double s = 0.0;
          for (int c = 0; c < C; ++c) s += p[c] = std::exp(z[c] - z[best]);
          for (int c = 0; c < C; ++c) line += " " + number(p[c] / s);
        }
        break;
      }
      case Loss::squared:
        squared_error += (z[0] - y) * (z[0] - y);
        line = number(z[0]);
        break;
    }
    e.rows += line + "\n";
  }
  char buf[160];
  e.report = "rows " + std::to_string(n) + "\n";
  if (obj.loss == Loss::squared) {
    e.report += "rmse " + number(std::sqrt(squared_error / n)) + "\n";
    e.report += "mse " + number(squared_error / n) + "\n";
    return e;
  }
  std::snprintf(buf, sizeof buf, "accuracy %.6f (%lld/%lld)\n", static_cast<double>(correct) / n,
                static_cast<long long>(correct), static_cast<long long>(n));
  e.report += buf;
  e.report += "log-loss " + number(loss / n) + "\n";
  if (obj.loss == Loss::logistic) {
    const double a = auc(scores, data.y);
    e.report += std::isnan(a) ? std::string("auc nan (one class only)\n") : "auc " + number(a) + "\n";
  } else {
    e.report += "confusion (rows: true class, columns: predicted class)\n";
    std::snprintf(buf, sizeof buf, "%8s", "");
    e.report += buf;
    for (int c = 0; c < C; ++c) {
      std::snprintf(buf, sizeof buf, " %8g", c + offset);
      e.report += buf;
    }
    e.report += "\n";
    for (int t = 0; t < C; ++t) {
      std::snprintf(buf, sizeof buf, "%8g", t + offset);
      e.report += buf;
      for (int c = 0; c < C; ++c) {
        std::snprintf(buf, sizeof buf, " %8lld",
                      static_cast<long long>(confusion[static_cast<std::size_t>(t) * C + c]));
        e.report += buf;
      }
      e.report += "\n";
    }
  }
  return e;
}

}  // namespace

int main(int argc, char** argv) try {
  DataSpec spec;
  Objective given;
  std::string model_path, output, liblinear;
  bool probabilities = false, quiet = false;
  CLI::App app{"dsaga-predict " DSAGA_VERSION ": applies a model (dsaga-hub --model, "
               "dsaga-reference --model) to data read with the agents' data options, prints "
               "accuracy and log loss (logistic: AUC; multinomial: confusion matrix; squared: "
               "RMSE), and exports logistic and squared models to liblinear's format. The loss and "
               "classes are the model's (--loss and --classes, if given, must agree)."};
  app.set_version_flag("--version", DSAGA_VERSION);
  app.add_option("--model", model_path, "Model file (dsaga-model-2 or dsaga-model-1)")->required();
  cli::DataOptions data(app, spec, given);
  app.add_option("--output", output,
                 "Write one prediction per row here (liblinear-predict's layout)");
  app.add_flag("--probabilities", probabilities,
               "--output: also the probability of each class (a 'labels' line first)");
  app.add_option("--export-liblinear", liblinear,
                 "Write the model in liblinear 2.3's format (logistic, squared; not --normalize)");
  app.add_flag("-q,--quiet", quiet, "No notes on stderr");
  double holdout = 0.0;
  std::uint64_t holdout_seed = 0;
  app.add_option("--holdout", holdout,
                 "Predict only the rows a dsaga-agent with these data options and the same "
                 "--holdout and --holdout-seed holds out for validation (0 = every row)")
      ->capture_default_str();
  app.add_option("--holdout-seed", holdout_seed, "The agent's --holdout-seed")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const auto fail = [](const std::string& message, int code) {
    std::fprintf(stderr, "dsaga-predict: %s\n", message.c_str());
    return code;
  };
  if (const Status s = data.apply(); !s) return fail(s.message(), 2);
  const bool have_data = !spec.path.empty() || spec.format == "fashion-mnist";
  if (!have_data && liblinear.empty())
    return fail("nothing to do: give --data (or --format fashion-mnist) and/or --export-liblinear", 2);
  if (!have_data && !output.empty()) return fail("--output: no --data to predict", 2);

  auto loaded = load_model(model_path);
  if (!loaded) return fail(loaded.error(), 1);
  const Model& m = *loaded;
  if (probabilities && m.objective.loss == Loss::squared)
    return fail("--probabilities: the model (" + model_path + ") has loss squared, which has none", 2);
  if (const Status s = check_options(app, m, model_path, given, spec); !s) return fail(s.message(), 1);
  if (!quiet && !m.data_recorded)
    std::fprintf(stderr,
                 "dsaga-predict: %s does not record the data options (the hub never sees them); "
                 "applying it with the ones given: scale %s, normalize %s, bias %s%s\n",
                 model_path.c_str(), number(spec.scale).c_str(), yes_no(spec.normalize_rows).c_str(),
                 yes_no(spec.bias).c_str(),
                 m.objective.loss == Loss::logistic
                     ? (", positive " + labels_text(spec.positive)).c_str()
                     : "");

  if (!liblinear.empty()) {
    DataTransform t{spec.scale, spec.normalize_rows, spec.bias, spec.positive};
    auto text = liblinear_model_text(m, t);
    if (!text) return fail("--export-liblinear: " + text.error(), 1);
    if (const Status s = write_file_atomic(liblinear, *text); !s) return fail(s.message(), 1);
  }
  if (!have_data) return 0;

  // Read with the squared loss, which keeps the raw labels; then mapped as the agents map them
  // (multinomial: --first-class, the data set's numbering).
  Objective raw_objective;
  raw_objective.loss = Loss::squared;
  auto dataset = load_data(spec, raw_objective);
  if (!dataset) return fail(dataset.error(), 1);
  if (holdout != 0) {  // the agent's split (data_source.hpp: hold_out), on the same rows
    auto split = hold_out(*dataset, holdout, holdout_seed);
    if (!split) return fail("--holdout: " + split.error(), 2);
    dataset = std::move(split->validation);
  }
  if (const Status s = check_width(*dataset, m, model_path, spec); !s) return fail(s.message(), 1);
  const double first_raw = dataset->y.size() > 0 ? dataset->y[0] : 0.0;
  if (Status s = prepare_labels(*dataset, m.objective, spec.positive, spec.first_class); !s)
    return fail(s.message(), 1);
  if (Status s = validate(m.objective, *dataset); !s) return fail(s.message(), 1);
  const double offset = m.objective.loss == Loss::multinomial && dataset->y.size() > 0
                            ? first_raw - dataset->y[0] : 0.0;
  if (!quiet && offset != 0.0)
    std::fprintf(stderr, "dsaga-predict: %s: labels read as classes 1..%d (--first-class 1)\n",
                 dataset->source.c_str(), m.objective.classes);

  const Evaluation e = evaluate(*dataset, m, offset, probabilities);
  std::fputs(e.report.c_str(), stdout);
  if (!output.empty())
    if (const Status s = write_file_atomic(output, e.rows); !s) return fail(s.message(), 1);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-predict: internal error: %s\n", e.what());
  return 70;
}
