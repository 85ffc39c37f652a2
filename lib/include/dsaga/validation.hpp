// Held-out evaluation (issue 16): what an agent counts on validation rows it never trains on, at a
// round's broadcast w, and what the hub makes of a round's counts.
//
// An agent reports counts, never figures, so that the hub's figures are exact over the union of
// every agent's validation rows (a mean of per-agent accuracies would weigh a small agent like a
// large one):
//   examples   rows evaluated
//   loss_sum   sum_i loss(y_i, <x_i, w>) over them (the training loss, no regulariser)
//   correct    rows predicted right, by dsaga-predict's rule: logistic +1 iff z > 0 (liblinear's
//              rule), multinomial the first class of largest margin; 0 for squared (no classes)
//   negatives, positives   logistic only: kAucBins counts each, rows of label -1 / +1 by the bin of
//              their score P(+1) = 1 / (1 + exp(-z)), bin b = [b / B, (b + 1) / B) (the last bin
//              closed); empty for the other losses
// The histograms add up across agents, and the area under the ROC curve follows from them
// (histogram_auc): pairs in different bins are ordered exactly; pairs in the same bin count one
// half, as ties do. So the AUC is exact up to the pairs whose scores share a bin: its error is at
// most auc_error = (1/2) sum_b negatives_b positives_b / (N_neg N_pos), which the hub computes
// along with it (0 when every bin holds one class only). B = 256 bins cost 4 KiB in an Update
// that carries counts.
#pragma once

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

inline constexpr int kAucBins = 256;

struct ValidationCounts {
  std::uint64_t examples = 0;  // 0: nothing evaluated (every other field zero or empty)
  double loss_sum = 0.0;
  std::uint64_t correct = 0;
  std::vector<std::uint64_t> negatives;  // logistic: kAucBins counts; otherwise empty
  std::vector<std::uint64_t> positives;

  bool empty() const { return examples == 0; }
  void clear();  // keeps the histograms' capacity
  // Adds another agent's counts (histograms summed bin by bin; an empty one adds nothing).
  void add(const ValidationCounts& other);
};

// The bin of score z: floor(B / (1 + exp(-z))), clamped to 0..B-1 (monotone in z).
int auc_bin(double z);

// The counts of `data` (labels prepared for `objective`) at w (d*C). `out` is overwritten; its
// histograms keep their capacity, so an agent's rounds allocate nothing once sized. Margins and
// losses are computed as dsaga-predict computes them (objective.hpp: margins, sample_loss).
void count_validation(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                      ValidationCounts& out);

// Whether counts are consistent, the error naming the field ("correct 7 > examples 5"): finite
// loss_sum >= 0, correct <= examples, histograms both empty or both of kAucBins with every row in
// one bin (their sum == examples), all zero when examples == 0. `prefix` starts each message.
Status check_counts(const ValidationCounts& counts, const char* prefix);
// The same for counts held elsewhere (the wire checks them in the received buffer, copying
// nothing): `Bins` has size() and begin()/end() over std::uint64_t.
template <class Bins>
Status check_counts(std::uint64_t examples, double loss_sum, std::uint64_t correct,
                    const Bins& negatives, const Bins& positives, const char* prefix);

// What the hub reports for a round; NaN = not known (no counts, or not defined for the loss).
struct ValidationFigures {
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t examples = 0;  // 0: the round has no counts (its figures are all unknown)
  std::uint64_t correct = 0;
  double loss = kUnknown;       // loss_sum / examples
  double accuracy = kUnknown;   // correct / examples (logistic and multinomial)
  double auc = kUnknown;        // logistic, when both labels occur
  double auc_error = kUnknown;  // the bound on |auc - the exact AUC| above
};
ValidationFigures summarize(const ValidationCounts& counts, Loss loss);

// AUC from the two histograms (NaN when a label is absent) and the bound on its error.
double histogram_auc(const std::vector<std::uint64_t>& negatives,
                     const std::vector<std::uint64_t>& positives, double* error_bound = nullptr);

// ---- implementation of the template above ---------------------------------------------------

template <class Bins>
Status check_counts(std::uint64_t examples, double loss_sum, std::uint64_t correct,
                    const Bins& negatives, const Bins& positives, const char* prefix) {
  const auto bad = [&](const std::string& why) { return Status::error(prefix + why); };
  const auto n = [](auto v) { return std::to_string(v); };
  if (!std::isfinite(loss_sum)) return bad("loss_sum is not finite");
  if (loss_sum < 0) return bad("loss_sum " + n(loss_sum) + " is negative");
  if (correct > examples) return bad("correct " + n(correct) + " > examples " + n(examples));
  const std::size_t bins = static_cast<std::size_t>(kAucBins);
  if (negatives.size() == 0 && positives.size() == 0) {
    if (examples == 0 && loss_sum != 0) return bad("examples 0 with a loss_sum " + n(loss_sum));
    return Status::ok();
  }
  if (negatives.size() != bins || positives.size() != bins)
    return bad("score histograms of " + n(negatives.size()) + " and " + n(positives.size()) +
               " bins, expected " + n(bins) + " each or none");
  // Summed without overflow: every partial sum stays <= examples.
  std::uint64_t rows = 0;
  for (const Bins* histogram : {&negatives, &positives})
    for (auto it = histogram->begin(); it != histogram->end(); ++it) {
      const std::uint64_t count = *it;
      if (count > examples - rows)
        return bad("the score histograms hold more rows than examples " + n(examples));
      rows += count;
    }
  if (rows != examples)
    return bad("the score histograms hold " + n(rows) + " rows, examples " + n(examples));
  return Status::ok();
}

}  // namespace dsaga
