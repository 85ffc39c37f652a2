// Held-out evaluation counts and the figures made of them (validation.hpp).
#include "dsaga/validation.hpp"

#include <algorithm>
#include <cmath>

#include "strings.hpp"

namespace dsaga {

namespace {

constexpr int kStackClasses = 64;  // margins of up to this many classes live on the stack

}  // namespace

void ValidationCounts::clear() {
  examples = 0;
  loss_sum = 0.0;
  correct = 0;
  negatives.clear();
  positives.clear();
}

void ValidationCounts::add(const ValidationCounts& other) {
  examples += other.examples;
  loss_sum += other.loss_sum;
  correct += other.correct;
  const auto add_bins = [](std::vector<std::uint64_t>& into,
                           const std::vector<std::uint64_t>& from) {
    if (from.empty()) return;
    if (into.size() < from.size()) into.resize(from.size(), 0);
    for (std::size_t b = 0; b < from.size(); ++b) into[b] += from[b];
  };
  add_bins(negatives, other.negatives);
  add_bins(positives, other.positives);
}

int auc_bin(double z) {
  // P(+1) = 1 / (1 + exp(-z)), computed without overflow for either sign of z.
  const double p = z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
  const int b = static_cast<int>(p * kAucBins);  // p in [0, 1]; NaN z never reaches here
  return std::clamp(b, 0, kAucBins - 1);
}

void count_validation(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                      ValidationCounts& out) {
  out.clear();
  const int C = objective.classes;
  const bool binary = objective.loss == Loss::logistic;
  if (binary) {
    out.negatives.assign(kAucBins, 0);  // within capacity after the first call
    out.positives.assign(kAucBins, 0);
  }
  double stack[kStackClasses];
  std::vector<double> heap;
  if (C > kStackClasses) heap.resize(static_cast<std::size_t>(C));
  double* z = C > kStackClasses ? heap.data() : stack;
  const Index n = data.rows();
  for (Index i = 0; i < n; ++i) {
    const double y = data.y[i];
    margins(data, i, w, z);
    out.loss_sum += sample_loss(objective, y, z);
    switch (objective.loss) {
      case Loss::logistic: {
        // dsaga-predict's (and liblinear's) rule: +1 only when z > 0.
        const double label = z[0] > 0 ? 1.0 : -1.0;
        out.correct += label == y ? 1 : 0;
        ++(y > 0 ? out.positives : out.negatives)[static_cast<std::size_t>(auc_bin(z[0]))];
        break;
      }
      case Loss::multinomial: {
        const int best = static_cast<int>(std::max_element(z, z + C) - z);
        out.correct += best == static_cast<int>(y) ? 1 : 0;
        break;
      }
      case Loss::squared:
        break;
    }
  }
  out.examples = static_cast<std::uint64_t>(n);
}

Status check_counts(const ValidationCounts& c, const char* prefix) {
  return check_counts(c.examples, c.loss_sum, c.correct, c.negatives, c.positives, prefix);
}

double histogram_auc(const std::vector<std::uint64_t>& negatives,
                     const std::vector<std::uint64_t>& positives, double* error_bound) {
  if (error_bound != nullptr) *error_bound = ValidationFigures::kUnknown;
  const std::size_t bins = std::min(negatives.size(), positives.size());
  double n_neg = 0.0, n_pos = 0.0;
  for (std::size_t b = 0; b < bins; ++b) {
    n_neg += static_cast<double>(negatives[b]);
    n_pos += static_cast<double>(positives[b]);
  }
  if (n_neg == 0 || n_pos == 0) return ValidationFigures::kUnknown;
  // Mann-Whitney over bins: a positive beats every negative of a lower bin, ties half.
  double below = 0.0, wins = 0.0, same = 0.0;
  for (std::size_t b = 0; b < bins; ++b) {
    const double neg = static_cast<double>(negatives[b]), pos = static_cast<double>(positives[b]);
    wins += pos * below + 0.5 * pos * neg;
    same += pos * neg;
    below += neg;
  }
  if (error_bound != nullptr) *error_bound = 0.5 * same / (n_neg * n_pos);
  return wins / (n_neg * n_pos);
}

ValidationFigures summarize(const ValidationCounts& c, Loss loss) {
  ValidationFigures f;
  if (c.examples == 0) return f;
  const double n = static_cast<double>(c.examples);
  f.examples = c.examples;
  f.correct = c.correct;
  f.loss = c.loss_sum / n;
  if (loss != Loss::squared) f.accuracy = static_cast<double>(c.correct) / n;
  if (loss == Loss::logistic) f.auc = histogram_auc(c.negatives, c.positives, &f.auc_error);
  return f;
}

}  // namespace dsaga
