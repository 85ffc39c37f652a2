// The trained model as a file: what dsaga-hub and dsaga-reference write, what dsaga-predict
// reads, and its translation into liblinear's model format.
//
// Format "dsaga-model-2" (text; '#' comment lines and blank lines are skipped):
//   format dsaga-model-2
//   loss logistic|squared|multinomial
//   classes C              1 for logistic and squared
//   features D             the model's width, the bias column included when there is one
//   lambda, round, objective   how it was trained (objective may be nan)
//   data-options recorded|unknown
//   scale S                \  only with "data-options recorded": the data options of
//   normalize yes|no        | data_source.hpp that turned raw rows into the rows w applies to
//   bias yes|no             | (bias: the last of the D columns is the constant 1)
//   positive L1,L2,...      / logistic only: the raw labels that are +1 ("default": 1 is +1,
//                             0 and -1 are -1)
//   w
//   D lines of C weights each (feature-major, w[k*C + c], %.17g)
// Applying it: z = <x, w> per class over a row prepared by those data options (read -> scale ->
// normalize -> bias); logistic P(+1) = 1 / (1 + exp(-z)); multinomial P(c) = softmax(z)_c, class
// c being raw label c (or c + 1 with --first-class 1: prepare_labels in objective.hpp);
// squared: the prediction is z.
//
// Who knows the data options: the agents decide them and the hub never sees the data, so a
// model written by dsaga-hub says "data-options unknown" and must be applied with the agents'
// data options (dsaga-predict takes the same ones); loss, classes and width are always
// recorded and checked. dsaga-reference loads the data itself and records them, and
// dsaga-predict refuses options that disagree with a recorded value.
//
// "dsaga-model-1" files (no data-options line) are still read, as "data-options unknown".
#pragma once

#include <Eigen/Dense>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"

namespace dsaga {

inline constexpr const char* kModelFormat = "dsaga-model-2";

// The data options (data_source.hpp DataSpec) that decide what a row means to the model.
struct DataTransform {
  double scale = 1.0;
  bool normalize_rows = false;
  bool bias = false;
  std::vector<double> positive;  // logistic; empty = the default rule of prepare_labels
};

struct Model {
  Objective objective;  // loss, classes, lambda
  Index features = 0;   // D, bias column included
  Eigen::VectorXd w;    // D*C, feature-major (objective.hpp)
  std::uint64_t round = 0;
  double objective_value = std::numeric_limits<double>::quiet_NaN();
  bool data_recorded = false;  // whether `data` holds what the trainer used
  DataTransform data;
  int format_version = 2;  // as read: 1 for a "dsaga-model-1" file
};

// The file's text (format above), and the file written atomically (report.hpp).
Result<std::string> format_model(const Model& model);
Status save_model(const std::string& path, const Model& model);
// What the hub writes: data options unknown.
Status save_model(const std::string& path, const Objective& objective, Index features,
                  const Eigen::VectorXd& w, std::uint64_t round, double objective_value);

// Reads a "dsaga-model-1" or "dsaga-model-2" file (gzip-compressed too). Errors name the file
// and line ("model.txt:7: classes: ...") and never allocate more than the file's contents
// justify; any other format name is refused with the names this release reads.
Result<Model> load_model(const std::string& path);
Result<Model> parse_model(std::string_view text, const std::string& name);

// The model in liblinear 2.3's text format, so that `liblinear-predict` on raw LIBSVM rows
// gives dsaga-predict's predictions:
// - logistic -> solver_type L2R_LR, nr_class 2, "label 1 -1": liblinear predicts label[0] = +1
//   when w.x > 0, as dsaga does, and its probability of label[0] is 1 / (1 + exp(-w.x));
// - squared -> solver_type L2R_L2LOSS_SVR (regression: nr_class 2, no label line);
// - multinomial is refused (liblinear's multi-class models are one-vs-rest, not softmax).
// `transform` is the data options the model was trained with: `scale` is folded into the
// feature weights (<s x, w> = <x, s w>); with `bias`, the last column becomes liblinear's bias
// term (bias 1, nr_feature D - 1), otherwise "bias -1". Row normalisation cannot be expressed
// (liblinear-predict reads raw rows) and is refused.
Result<std::string> liblinear_model_text(const Model& model, const DataTransform& transform);

}  // namespace dsaga
