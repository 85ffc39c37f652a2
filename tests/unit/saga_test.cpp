// Tests of the SAGA local solver (saga.hpp): the step against a direct transcription of
// ALGORITHM.md section 2, convergence to the reference optimum on Fashion-MNIST, the sparse
// just-in-time path against the dense path, the table invariants, determinism across run()
// boundaries, the default step size and the no-allocation contract.
#include "dsaga/saga.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "dsaga/dataset.hpp"
#include "dsaga/io.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/reference.hpp"
#include "dsaga/rng.hpp"

// --- allocation counting (this test executable only) -------------------------------------------
#include "alloc_counter.hpp"

namespace dsaga {
namespace {

using Table = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

volatile double g_sink = 0.0;

// ||a - b|| / max(||b||, tiny): relative distance of two iterates, gradients or tables.
double rel(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

// A random problem: n x d with about `density` non-zero entries in [-1, 1], column 1 all zero
// (a coordinate no row ever reads), labels fitting `objective`.
Dataset random_dense(Index n, Index d, double density, const Objective& objective,
                     std::uint64_t seed) {
  Rng rng(seed);
  DenseMatrix<double> X = DenseMatrix<double>::Zero(n, d);
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < d; ++k)
      if (k != 1 && rng.uniform() < density) X(i, k) = 2.0 * rng.uniform() - 1.0;
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    switch (objective.loss) {
      case Loss::logistic:
        y[i] = rng.uniform() < 0.5 ? -1.0 : 1.0;
        break;
      case Loss::squared:
        y[i] = 4.0 * rng.uniform() - 2.0;
        break;
      case Loss::multinomial:
        y[i] = static_cast<double>(rng.below(objective.classes));
        break;
    }
  }
  Dataset data;
  data.X = std::move(X);
  data.y = y;
  data.source = "random";
  return data;
}

// The same entries in CSR (only non-zeros stored) and/or float32.
Dataset as_sparse(const Dataset& dense) {
  const auto& X = std::get<DenseMatrix<double>>(dense.X);
  SparseMatrix<double> S = X.sparseView();
  S.makeCompressed();
  Dataset out;
  out.X = std::move(S);
  out.y = dense.y;
  return out;
}
Dataset as_float(const Dataset& dense, bool sparse) {
  const DenseMatrix<float> Xf = std::get<DenseMatrix<double>>(dense.X).cast<float>();
  Dataset out;
  out.y = dense.y;
  if (sparse) {
    SparseMatrix<float> S = Xf.sparseView();
    S.makeCompressed();
    out.X = std::move(S);
  } else {
    out.X = Xf;
  }
  return out;
}

Eigen::VectorXd random_vector(Index size, std::uint64_t seed, double scale = 0.3) {
  Rng rng(seed);
  Eigen::VectorXd v(size);
  for (Index i = 0; i < size; ++i) v[i] = scale * (2.0 * rng.uniform() - 1.0);
  return v;
}

Objective logistic(double lambda) { return Objective{Loss::logistic, lambda, 1}; }
Objective squared(double lambda) { return Objective{Loss::squared, lambda, 1}; }
Objective multinomial(double lambda, int C) { return Objective{Loss::multinomial, lambda, C}; }

// sum_i table_i x_i recomputed from the table (feature-major layout).
Eigen::VectorXd table_times_data(const Dataset& data, const Table& table) {
  const Index d = data.cols();
  const int C = static_cast<int>(table.cols());
  Eigen::VectorXd S = Eigen::VectorXd::Zero(d * C);
  const DenseMatrix<double> X = std::visit(
      [](const auto& M) -> DenseMatrix<double> {
        return DenseMatrix<double>(M.template cast<double>());
      },
      data.X);
  for (Index i = 0; i < data.rows(); ++i)
    for (Index k = 0; k < d; ++k)
      for (int c = 0; c < C; ++c) S[k * C + c] += table(i, c) * X(i, k);
  return S;
}

// ALGORITHM.md section 2 transcribed with matrices (W is d x C, G = x (a - a_j)^T), dense data.
struct NaiveSaga {
  Eigen::MatrixXd W, Gbar;
  Eigen::MatrixXd table;  // n x C
  Rng rng;
  void step(const DenseMatrix<double>& X, const Eigen::VectorXd& y, const Objective& obj,
            double eta, double N) {
    const Index j = static_cast<Index>(rng.below(static_cast<std::uint64_t>(X.rows())));
    const Eigen::VectorXd x = X.row(j).transpose();
    const Eigen::VectorXd z = W.transpose() * x;
    Eigen::VectorXd a(W.cols());
    sample_derivative(obj, y[j], z.data(), a.data());
    const Eigen::MatrixXd G = x * (a - table.row(j).transpose()).transpose();
    W = W - eta * (G + Gbar + obj.lambda * W);
    Gbar = Gbar + G / N;
    table.row(j) = a.transpose();
  }
  // Feature-major flattening: w[k*C + c] = W(k, c).
  static Eigen::VectorXd flat(const Eigen::MatrixXd& M) {
    Eigen::VectorXd v(M.size());
    for (Index k = 0; k < M.rows(); ++k)
      for (Index c = 0; c < M.cols(); ++c) v[k * M.cols() + c] = M(k, c);
    return v;
  }
};

// --- the step ---------------------------------------------------------------------------------

TEST(SagaSolver, StepsFollowSection2ForEveryLossAndStorage) {
  const Index n = 40, d = 12;
  for (const Objective& obj : {logistic(0.05), squared(0.02), multinomial(0.03, 3)}) {
    const Dataset dense = random_dense(n, d, 0.6, obj, 11);
    const Dataset sparse = as_sparse(dense);
    const int C = obj.width();
    const Eigen::VectorXd w0 = random_vector(d * C, 5);
    // N > n: an agent of a larger problem, so gbar moves by (a - a_j) x_j / N, not / n.
    SagaOptions options;
    options.total_samples = 3 * n;
    options.seed = 99;
    for (const Dataset* data : {&dense, &sparse}) {
      SagaSolver solver(*data, obj, options);
      solver.init_table(w0);

      NaiveSaga naive;
      naive.rng = Rng(99);
      naive.W.resize(d, C);
      for (Index k = 0; k < d; ++k)
        for (int c = 0; c < C; ++c) naive.W(k, c) = w0[k * C + c];
      naive.table.resize(n, C);
      naive.Gbar = Eigen::MatrixXd::Zero(d, C);
      const auto& X = std::get<DenseMatrix<double>>(dense.X);
      for (Index i = 0; i < n; ++i) {
        const Eigen::VectorXd z = naive.W.transpose() * X.row(i).transpose();
        Eigen::VectorXd a(C);
        sample_derivative(obj, dense.y[i], z.data(), a.data());
        naive.table.row(i) = a.transpose();
        naive.Gbar += X.row(i).transpose() * a.transpose() / static_cast<double>(3 * n);
      }
      EXPECT_LT(rel(solver.gbar(), NaiveSaga::flat(naive.Gbar)), 1e-14);

      for (int step = 0; step < 300; ++step)
        naive.step(X, dense.y, obj, solver.eta(), static_cast<double>(3 * n));
      solver.run(300);
      EXPECT_LT(rel(solver.w(), NaiveSaga::flat(naive.W)), 1e-12)
          << to_string(obj.loss) << (data->is_sparse() ? " sparse" : " dense");
      EXPECT_LT(rel(solver.gbar(), NaiveSaga::flat(naive.Gbar)), 1e-12);
      EXPECT_LT(rel(solver.table(), Table(naive.table)), 1e-12);
    }
  }
}

TEST(SagaSolver, DefaultStepIsOneThirdOfInverseMaxSmoothness) {
  // Rows (3, 0, 4), (1, 2, 2), (0, 0, 1): max ||x_i||^2 = 25.
  DenseMatrix<double> X(3, 3);
  X << 3, 0, 4, 1, 2, 2, 0, 0, 1;
  Dataset data;
  data.X = X;
  data.y = Eigen::Vector3d(1, -1, 1);
  const Dataset sparse = as_sparse(data);
  struct Case {
    Objective objective;
    double eta;
  };
  // L_max = beta * 25 + lambda; beta = 1/4, 1, 1/2.
  const Case cases[] = {{logistic(0.1), 1.0 / (3.0 * (6.25 + 0.1))},
                        {squared(0.1), 1.0 / (3.0 * (25.0 + 0.1))},
                        {multinomial(0.1, 4), 1.0 / (3.0 * (12.5 + 0.1))}};
  for (const Case& c : cases) {
    Dataset labelled = data;
    if (c.objective.loss == Loss::multinomial) labelled.y = Eigen::Vector3d(0, 3, 1);
    SagaSolver solver(labelled, c.objective, {});
    EXPECT_NEAR(solver.eta(), c.eta, 1e-15 * c.eta) << to_string(c.objective.loss);
    EXPECT_EQ(solver.total_samples(), 3);
    SagaSolver on_sparse(sparse, logistic(0.1), {});
    EXPECT_NEAR(on_sparse.eta(), cases[0].eta, 1e-15);
  }
  SagaOptions options;
  options.eta = 0.123;
  options.total_samples = 10;
  SagaSolver explicit_step(data, logistic(0.1), options);
  EXPECT_EQ(explicit_step.eta(), 0.123);
  EXPECT_EQ(explicit_step.total_samples(), 10);
}

// --- convergence on real data -------------------------------------------------------------------

const std::string kImages = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
const std::string kLabels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";

// The first `rows` test images, pixels / 255, rows scaled to unit norm, a constant 1 appended
// (ALGORITHM.md section 5). Labels as read (0..9).
Dataset fashion_mnist_piece(Index rows) {
  auto read = read_idx(kImages, kLabels);
  if (!read) {
    ADD_FAILURE() << read.error();
    return {};
  }
  std::vector<Index> first(static_cast<std::size_t>(rows));
  for (Index i = 0; i < rows; ++i) first[static_cast<std::size_t>(i)] = i;
  Dataset data = select_rows(*read, first);
  scale_features(data, 1.0 / 255.0);
  normalize_rows(data);
  append_constant(data, 1.0);
  return data;
}

// Runs SAGA an epoch at a time until (F - F*) / F* <= 1e-10; returns the epochs it took, or -1.
int epochs_to_1e10(SagaSolver& solver, const Dataset& data, const Objective& objective,
                   double F_star, int max_epochs) {
  for (int epoch = 1; epoch <= max_epochs; ++epoch) {
    solver.run(data.rows());
    const double F = objective_value(data, objective, solver.w());
    EXPECT_GE(F, F_star * (1.0 - 1e-13)) << "below the reference optimum at epoch " << epoch;
    if ((F - F_star) / F_star <= 1e-10) return epoch;
  }
  return -1;
}

TEST(SagaSolver, ReachesReferenceOptimumOnFashionMnistLogistic) {
  Dataset data = fashion_mnist_piece(1000);
  ASSERT_EQ(data.cols(), 785);
  const Objective objective = logistic(1e-3);
  ASSERT_TRUE(prepare_labels(data, objective, {0, 2, 4, 6}));
  auto reference = solve_reference(data, objective);
  ASSERT_TRUE(reference) << reference.error();

  SagaOptions options;
  options.seed = 1;
  SagaSolver solver(data, objective, options);
  const double loss0 = solver.init_table(Eigen::VectorXd::Zero(785));
  EXPECT_NEAR(loss0, 1000.0 * std::log(2.0), 1e-9);
  const int epochs = epochs_to_1e10(solver, data, objective, reference->value, 300);
  EXPECT_GT(epochs, 0) << "F* = " << reference->value;
  RecordProperty("epochs", epochs);
}

TEST(SagaSolver, ReachesReferenceOptimumOnFashionMnistMultinomialAndSquared) {
  const Dataset piece = fashion_mnist_piece(300);
  {
    Dataset data = piece;
    const Objective objective = multinomial(1e-2, 10);
    ASSERT_TRUE(prepare_labels(data, objective));
    auto reference = solve_reference(data, objective);
    ASSERT_TRUE(reference) << reference.error();
    SagaOptions options;
    options.seed = 2;
    SagaSolver solver(data, objective, options);
    solver.init_zero(Eigen::VectorXd::Zero(785 * 10));
    EXPECT_GT(epochs_to_1e10(solver, data, objective, reference->value, 400), 0)
        << "multinomial, F* = " << reference->value;
  }
  {
    Dataset data = piece;
    for (Index i = 0; i < data.rows(); ++i) {
      const double label = data.y[i];
      data.y[i] = (label == 0 || label == 2 || label == 4 || label == 6) ? 1.0 : -1.0;
    }
    const Objective objective = squared(1e-2);
    auto reference = solve_reference(data, objective);
    ASSERT_TRUE(reference) << reference.error();
    SagaOptions options;
    options.seed = 3;
    SagaSolver solver(data, objective, options);
    solver.init_table(Eigen::VectorXd::Zero(785));
    EXPECT_GT(epochs_to_1e10(solver, data, objective, reference->value, 400), 0)
        << "squared, F* = " << reference->value;
  }
}

// --- determinism and the sparse path ----------------------------------------------------------

TEST(SagaSolver, RunsInPiecesEqualOneRunBitwise) {
  const Index n = 50, d = 20;
  for (const Objective& obj : {logistic(0.02), multinomial(0.02, 3)}) {
    const Dataset dense = random_dense(n, d, 0.4, obj, 21);
    const Dataset sparse = as_sparse(dense);
    for (const Dataset* data : {&dense, &sparse}) {
      SagaOptions options;
      options.seed = 7;
      SagaSolver pieces(*data, obj, options), whole(*data, obj, options);
      const Eigen::VectorXd w0 = random_vector(d * obj.width(), 3);
      pieces.init_table(w0);
      whole.init_table(w0);
      // 7 x 400 steps cross the sparse path's periodic restart (every 1024 steps) twice, and
      // the index lookahead of run() (one step dense, two sparse) restarts at every call;
      // looking at the accessors between runs must not change anything either.
      for (int k = 0; k < 7; ++k) {
        EXPECT_EQ(pieces.run(400).steps, 400);
        // Every accessor materialises derived vectors (gbar, table_sum from the delta); none
        // may disturb the step state.
        g_sink = g_sink + pieces.w()[0] + pieces.gbar()[0] + pieces.table_sum()[0] +
                 pieces.delta_sum()[0];
      }
      whole.run(7 * 400);
      const char* what = data->is_sparse() ? "sparse" : "dense";
      EXPECT_TRUE(pieces.w() == whole.w()) << what;
      EXPECT_TRUE(pieces.gbar() == whole.gbar()) << what;
      EXPECT_TRUE(pieces.table() == whole.table()) << what;
      EXPECT_TRUE(pieces.table_sum() == whole.table_sum()) << what;
      EXPECT_TRUE(pieces.delta_sum() == whole.delta_sum()) << what;
      EXPECT_EQ(pieces.rng().state(), whole.rng().state());
      EXPECT_GT(rel(whole.w(), w0), 1e-3) << "the run must have moved w";
    }
  }
}

// Sparse (just-in-time) and dense storage of the same data and seed give the same iterates.
void expect_sparse_matches_dense(const Dataset& dense, const Dataset& sparse, const Objective& obj,
                                 const SagaOptions& options, Index steps, bool from_table,
                                 double tolerance = 1e-12) {
  SCOPED_TRACE(std::string(to_string(obj.loss)) + " lambda=" + std::to_string(obj.lambda) +
               " C=" + std::to_string(obj.width()) + " steps=" + std::to_string(steps));
  SagaSolver a(dense, obj, options), b(sparse, obj, options);
  const Eigen::VectorXd w0 = random_vector(dense.cols() * obj.width(), 17);
  if (from_table) {
    EXPECT_NEAR(a.init_table(w0), b.init_table(w0), 1e-12 * std::abs(a.init_table(w0)));
  } else {
    a.init_zero(w0);
    b.init_zero(w0);
  }
  a.run(steps);
  b.run(steps);
  EXPECT_LT(rel(b.w(), a.w()), tolerance);
  EXPECT_LT(rel(b.gbar(), a.gbar()), tolerance);
  EXPECT_LT(rel(b.table(), a.table()), tolerance);
  EXPECT_LT(rel(b.table_sum(), a.table_sum()), tolerance);
  EXPECT_GT(rel(a.w(), w0), 1e-3) << "the run must have moved w";
}

TEST(SagaSolver, SparseMatchesDenseWithAndWithoutRegularisation) {
  const Index n = 60, d = 25;
  for (double lambda : {0.01, 0.0}) {
    for (const Objective& obj : {logistic(lambda), multinomial(lambda, 3), squared(lambda)}) {
      const Dataset dense = random_dense(n, d, 0.3, obj, 31);
      const Dataset sparse = as_sparse(dense);
      SagaOptions options;
      options.seed = 5;
      // 25 epochs: crosses the periodic restart of the lazy representation.
      expect_sparse_matches_dense(dense, sparse, obj, options, 25 * n, true);
      expect_sparse_matches_dense(dense, sparse, obj, options, 25 * n, false);
    }
  }
}

TEST(SagaSolver, SparseMatchesDenseInFloat32) {
  const Objective obj = multinomial(0.01, 3);
  const Dataset dense = random_dense(60, 25, 0.3, obj, 41);
  SagaOptions options;
  options.seed = 6;
  expect_sparse_matches_dense(as_float(dense, false), as_float(dense, true), obj, options, 1500,
                              true);
}

TEST(SagaSolver, SparseMatchesDenseWhenTheScaleUnderflowsOrTheStepIsHuge) {
  const Objective obj = logistic(0.5);
  const Dataset dense = random_dense(40, 10, 0.5, obj, 51);
  const Dataset sparse = as_sparse(dense);
  SagaOptions options;
  options.seed = 8;
  // eta * lambda = 0.5: the scale s halves every step and passes 1e-100 every ~330 steps.
  options.eta = 1.0;
  expect_sparse_matches_dense(dense, sparse, obj, options, 2000, true);
  // eta * lambda = 1.5 (far outside SAGA's range; w' = -0.5 w - ...): the scaled form cannot
  // divide by s, the eager fallback must still agree.
  options.eta = 3.0;
  expect_sparse_matches_dense(dense, sparse, obj, options, 300, true);
}

// --- invariants -----------------------------------------------------------------------------

TEST(SagaSolver, TableSumsAndDeltaStayConsistent) {
  const Index n = 50, d = 15;
  for (const Objective& obj : {logistic(0.01), multinomial(0.01, 4), squared(0.01)}) {
    const Dataset dense = random_dense(n, d, 0.5, obj, 61);
    const Dataset sparse = as_sparse(dense);
    for (const Dataset* data : {&dense, &sparse}) {
      for (Index N : {n, 4 * n}) {
        SCOPED_TRACE(std::string(to_string(obj.loss)) + (data->is_sparse() ? " sparse" : " dense") +
                     " N=" + std::to_string(N));
        SagaOptions options;
        options.total_samples = N;
        options.seed = 13;
        SagaSolver solver(*data, obj, options);
        const int C = obj.width();
        const Eigen::VectorXd w0 = random_vector(d * C, 23);

        // init_table: the table is loss' at w0, the loss sum is returned, gbar = S / N.
        const double loss = solver.init_table(w0);
        EXPECT_NEAR(loss, loss_sum(*data, obj, w0), 1e-12 * std::abs(loss));
        for (Index i : {Index(0), n / 2, n - 1}) {
          Eigen::VectorXd z(C), a(C);
          margins(*data, i, w0, z.data());
          sample_derivative(obj, data->y[i], z.data(), a.data());
          EXPECT_LT((solver.table().row(i).transpose() - a).norm(), 1e-14);
        }
        EXPECT_TRUE(solver.delta_sum().isZero(0.0));
        const Eigen::VectorXd S0 = solver.table_sum();
        EXPECT_LT(rel(S0, table_times_data(*data, solver.table())), 1e-12);

        // Steps keep table_sum == sum_i table_i x_i, gbar == table_sum / N, and delta_sum ==
        // the change of table_sum since the last reset.
        solver.run(3 * n);
        const Eigen::VectorXd S = table_times_data(*data, solver.table());
        EXPECT_LT(rel(solver.table_sum(), S), 1e-12);
        EXPECT_LT(rel(solver.gbar() * static_cast<double>(N), solver.table_sum()), 1e-12);
        EXPECT_LT(rel(solver.delta_sum(), solver.table_sum() - S0), 1e-12);

        const Eigen::VectorXd S1 = solver.table_sum();
        solver.reset_delta();
        EXPECT_TRUE(solver.delta_sum().isZero(0.0));
        solver.run(2 * n);
        EXPECT_LT(rel(solver.delta_sum(), solver.table_sum() - S1), 1e-12);
        EXPECT_LT(rel(solver.table_sum(), table_times_data(*data, solver.table())), 1e-12);

        // set_state with a (global) gbar from the hub: gbar then moves by exactly delta_sum / N.
        const Eigen::VectorXd g_hub = random_vector(d * C, 29, 0.05);
        const Eigen::VectorXd w_hub = random_vector(d * C, 31);
        solver.set_state(w_hub, g_hub);
        EXPECT_TRUE(solver.w() == w_hub);
        EXPECT_TRUE(solver.gbar() == g_hub);
        EXPECT_TRUE(solver.delta_sum().isZero(0.0));
        const Eigen::VectorXd S2 = solver.table_sum();
        solver.run(2 * n);
        EXPECT_LT(rel(solver.delta_sum(), solver.table_sum() - S2), 1e-12);
        EXPECT_LT(rel(solver.gbar() - g_hub, solver.delta_sum() / static_cast<double>(N)), 1e-12);
        EXPECT_FALSE(solver.w() == w_hub);
      }
    }
  }
}

// refresh(m): m entries recomputed at the current w, w untouched, and table_sum, delta_sum and
// gbar moved together exactly as by steps; for every loss and storage.
TEST(SagaSolver, RefreshRecomputesEntriesAtWWithoutMovingIt) {
  const Index n = 60, d = 9;
  for (const Objective& obj : {logistic(0.01), multinomial(0.01, 3), squared(0.01)}) {
    const Dataset dense = random_dense(n, d, 0.5, obj, 71);
    const Dataset sparse = as_sparse(dense);
    for (const Dataset* data : {&dense, &sparse}) {
      SCOPED_TRACE(std::string(to_string(obj.loss)) + (data->is_sparse() ? " sparse" : " dense"));
      const Index N = 5 * n;
      SagaSolver solver(*data, obj, SagaOptions{0.0, N, 17});
      const int C = obj.width();
      solver.init_table(random_vector(d * C, 3));
      solver.run(2 * n);  // entries now at many different iterates
      const Eigen::VectorXd w = random_vector(d * C, 5), g = random_vector(d * C, 7, 0.05);
      solver.set_state(w, g);
      const Table before = solver.table();
      const Eigen::VectorXd S0 = solver.table_sum();

      EXPECT_EQ(solver.refresh(n / 2).steps, n / 2);
      EXPECT_TRUE(solver.w() == w);
      Index changed = 0;
      for (Index i = 0; i < n; ++i) {
        Eigen::VectorXd z(C), a(C);
        margins(*data, i, w, z.data());
        sample_derivative(obj, data->y[i], z.data(), a.data());
        const Eigen::VectorXd now = solver.table().row(i).transpose();
        const Eigen::VectorXd old = before.row(i).transpose();
        // Each entry is either untouched or exactly its value at w.
        EXPECT_TRUE(now == old || (now - a).norm() <= 1e-14 * (1 + a.norm())) << "row " << i;
        if (!(now == old)) ++changed;
      }
      EXPECT_GT(changed, n / 4);  // n/2 draws with replacement touch ~0.39 n rows
      EXPECT_LT(rel(solver.table_sum(), table_times_data(*data, solver.table())), 1e-12);
      EXPECT_LT(rel(solver.delta_sum(), solver.table_sum() - S0), 1e-12);
      EXPECT_LT(rel(solver.gbar() - g, solver.delta_sum() / static_cast<double>(N)), 1e-12);
      // Steps after a refresh move w again.
      solver.run(n);
      EXPECT_FALSE(solver.w() == w);
    }
  }
}

TEST(SagaSolver, InitZeroClearsTheTable) {
  const Objective obj = multinomial(0.01, 3);
  const Dataset data = random_dense(30, 8, 0.5, obj, 71);
  SagaSolver solver(data, obj, {});
  const Eigen::VectorXd w0 = random_vector(8 * 3, 2);
  solver.init_table(w0);
  solver.run(100);
  solver.init_zero(w0);
  EXPECT_TRUE(solver.table().isZero(0.0));
  EXPECT_TRUE(solver.table_sum().isZero(0.0));
  EXPECT_TRUE(solver.gbar().isZero(0.0));
  EXPECT_TRUE(solver.delta_sum().isZero(0.0));
  EXPECT_TRUE(solver.w() == w0);
  // The first step from a zero table: gbar = a_j x_j / N, where a_j is loss' at w0.
  solver.run(1);
  const Index j = [&] {
    for (Index i = 0; i < 30; ++i)
      if (!solver.table().row(i).isZero(0.0)) return i;
    return Index(-1);
  }();
  ASSERT_GE(j, 0);
  Eigen::VectorXd z(3), a(3);
  margins(data, j, w0, z.data());
  sample_derivative(obj, data.y[j], z.data(), a.data());
  const auto& X = std::get<DenseMatrix<double>>(data.X);
  for (Index k = 0; k < 8; ++k)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(solver.gbar()[k * 3 + c], a[c] * X(j, k) / 30.0, 1e-16);
}

// --- memory -----------------------------------------------------------------------------------

TEST(SagaSolver, AllocatesNothingAfterConstruction) {
  if (!kCountsAllocations) GTEST_SKIP() << "a sanitizer owns malloc: nothing to count with";
  const Index n = 200, d = 40;
  for (const Objective& obj : {logistic(0.01), multinomial(0.01, 5)}) {
    const Dataset dense = random_dense(n, d, 0.3, obj, 81);
    const Dataset sparse = as_sparse(dense);
    const Dataset dense32 = as_float(dense, false);
    for (const Dataset* data : {&dense, &sparse, &dense32}) {
      const int C = obj.width();
      const Eigen::VectorXd w0 = random_vector(d * C, 4);
      const Eigen::VectorXd g0 = random_vector(d * C, 5, 0.01);
      SagaSolver solver(*data, obj, {});

      // state_bytes: at least the table and the four d*C vectors the contract names.
      const std::size_t floor = sizeof(double) * static_cast<std::size_t>(n * C + 4 * d * C);
      EXPECT_GE(solver.state_bytes(), floor);
      EXPECT_LE(solver.state_bytes(), 2 * floor);

      g_allocations = 0;
      g_counting = true;
      double sum = solver.init_table(w0);
      solver.run(5 * n);  // crosses the sparse path's restart (every 1024 steps)
      sum += solver.w().sum() + solver.gbar().sum();
      solver.reset_delta();
      solver.set_state(w0, g0);
      solver.run(3000);
      sum += solver.w().sum() + solver.gbar().sum() + solver.delta_sum().sum() +
             solver.table_sum().sum();
      solver.init_zero(w0);
      solver.run(100);
      sum += solver.w().sum();
      g_counting = false;
      g_sink = g_sink + sum;
      EXPECT_EQ(g_allocations.load(), 0)
          << to_string(obj.loss) << (data->is_sparse() ? " sparse" : " dense");
    }
  }
#if defined(__GLIBC__)
  // Control: the counter does see Eigen's (malloc-based) allocations.
  g_allocations = 0;
  g_counting = true;
  {
    Eigen::VectorXd v = Eigen::VectorXd::Constant(64, 1.0);
    g_sink = g_sink + v.sum();
  }
  g_counting = false;
  EXPECT_GT(g_allocations.load(), 0);
#endif
}

}  // namespace
}  // namespace dsaga
