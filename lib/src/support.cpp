// Restricted vectors and the closed form of a local run off the support (support.hpp).
#include "dsaga/support.hpp"

#include <cmath>

namespace dsaga::support {

void gather(const Eigen::VectorXd& full, const Columns& columns, int classes,
            std::vector<double>& out) {
  out.resize(columns.size() * static_cast<std::size_t>(classes));
  std::size_t p = 0;
  for (const std::uint32_t k : columns)
    for (int c = 0; c < classes; ++c) out[p++] = full[static_cast<Index>(k) * classes + c];
}

std::vector<double> gather(const Eigen::VectorXd& full, const Columns& columns, int classes) {
  std::vector<double> out;
  gather(full, columns, classes, out);
  return out;
}

void scatter(const double* restricted, const Columns& columns, int classes, double fill,
             Eigen::VectorXd& full) {
  full.setConstant(fill);
  std::size_t p = 0;
  for (const std::uint32_t k : columns)
    for (int c = 0; c < classes; ++c) full[static_cast<Index>(k) * classes + c] = restricted[p++];
}

void off_support_run(const Eigen::VectorXd& w_round, const Eigen::VectorXd& gbar,
                     const Columns& columns, int classes, const LocalRun& run,
                     Eigen::VectorXd& dw) {
  // rho^T - 1 and sum_{t < T} rho^t = (1 - rho^T) / (1 - rho), both through expm1/log1p so
  // that they keep their digits when eta (lambda + mu) is tiny (lambda = 1/N).
  const double shrink = run.eta * (run.lambda + run.prox);  // 1 - rho
  const double T = static_cast<double>(run.steps);
  const double rho_T_minus_1 = shrink < 1.0 ? std::expm1(T * std::log1p(-shrink))
                                            : std::pow(1.0 - shrink, T) - 1.0;
  const double sum = shrink == 0.0 ? T : -rho_T_minus_1 / shrink;
  const Index d = w_round.size() / classes;
  std::size_t next = 0;  // position in `columns` of the next supported column
  for (Index k = 0; k < d; ++k) {
    if (next < columns.size() && columns[next] == static_cast<std::uint32_t>(k)) {
      ++next;
      continue;
    }
    for (int c = 0; c < classes; ++c) {
      const Index i = k * classes + c;
      const double g = gbar[i] - run.prox * w_round[i];
      dw[i] = rho_T_minus_1 * w_round[i] - run.eta * g * sum;
    }
  }
}

}  // namespace dsaga::support
