// Restricted vectors and the hub's closed form of a local run off an agent's support
// (support.hpp).
#include "dsaga/support.hpp"

#include <gtest/gtest.h>

#include "dsaga/rng.hpp"

namespace dsaga {
namespace {

TEST(Support, GatherAndScatterKeepEachColumnsClasses) {
  const int C = 3;
  Eigen::VectorXd full(5 * C);
  for (Index i = 0; i < full.size(); ++i) full[i] = static_cast<double>(i);
  const support::Columns columns{1, 4};
  const std::vector<double> narrow = support::gather(full, columns, C);
  EXPECT_EQ(narrow, (std::vector<double>{3, 4, 5, 12, 13, 14}));
  Eigen::VectorXd back(5 * C);
  support::scatter(narrow.data(), columns, C, -1.0, back);
  for (Index k = 0; k < 5; ++k)
    for (int c = 0; c < C; ++c)
      EXPECT_EQ(back[k * C + c], (k == 1 || k == 4) ? full[k * C + c] : -1.0) << k << ' ' << c;
}

// The closed form against the steps themselves: w_j <- rho w_j - eta (gbar_j - mu w_r,j).
TEST(Support, OffSupportRunIsTheClosedFormOfTheSteps) {
  Rng rng(3);
  const int C = 2;
  const Index d = 6;
  Eigen::VectorXd w(d * C), gbar(d * C);
  for (Index i = 0; i < w.size(); ++i) {
    w[i] = rng.uniform() * 2 - 1;
    gbar[i] = rng.uniform() * 2 - 1;
  }
  const support::Columns columns{0, 3};
  struct Case {
    double eta, lambda, prox;
    std::uint64_t steps;
  };
  for (const Case t : {Case{0.5, 1e-2, 0.0, 40}, Case{0.25, 1.0 / 60000, 0.0, 7500},
                       Case{0.1, 0.0, 0.0, 100}, Case{0.3, 1e-3, 0.2, 25}, Case{0.5, 0.1, 0.0, 0}}) {
    SCOPED_TRACE(t.steps);
    Eigen::VectorXd dw = Eigen::VectorXd::Constant(d * C, 7.0);
    support::off_support_run(w, gbar, columns, C,
                             support::LocalRun{t.eta, t.lambda, t.prox, t.steps}, dw);
    const double rho = 1.0 - t.eta * (t.lambda + t.prox);
    for (Index k = 0; k < d; ++k)
      for (int c = 0; c < C; ++c) {
        const Index i = k * C + c;
        if (k == 0 || k == 3) {
          EXPECT_EQ(dw[i], 7.0);  // on the support: left to the agent's numbers
          continue;
        }
        double x = w[i];
        for (std::uint64_t s = 0; s < t.steps; ++s)
          x = rho * x - t.eta * (gbar[i] - t.prox * w[i]);
        EXPECT_NEAR(dw[i], x - w[i], 1e-12 * std::max(1.0, std::abs(x))) << i;
      }
  }
}

}  // namespace
}  // namespace dsaga
