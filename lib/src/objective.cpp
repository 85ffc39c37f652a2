// Losses, their derivatives and the full objective (ALGORITHM.md section 1).
//
// Every loop here reads the feature matrix in place (row pointers into dense storage, CSR arrays
// for sparse storage), converts each stored value to double as it is read and accumulates in
// double: no call copies, casts or transposes the matrix, and none allocates memory that grows
// with the number of rows. The storage type is dispatched once per call (std::visit) and the row
// loop is specialised for it.
#include "dsaga/objective.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <utility>

namespace dsaga {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Margins are computed in chunks of at most this many classes into a stack buffer, so that
// loss_sum allocates nothing whatever C is.
constexpr int kClassChunk = 64;

std::string where(const Dataset& data) { return data.source.empty() ? "data" : data.source; }

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// One row of the feature matrix as (index, value) pairs or as a contiguous dense array. Both
// forms expose the same two operations, so the loops below are written once.
template <class S>
struct DenseRow {
  const S* x;
  Index d;
  // z[j] += sum_k x_k * w[k*C + c0 + j], j < cn.
  void add_margins(const double* w, int C, int c0, int cn, double* z) const {
    if (C == 1) {
      // The common case: one dot product, vectorised by Eigen, accumulated in double.
      const Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> xv(x, d);
      const Eigen::Map<const Eigen::VectorXd> wv(w, d);
      z[0] += xv.template cast<double>().dot(wv);
      return;
    }
    for (Index k = 0; k < d; ++k) {
      const double xk = static_cast<double>(x[k]);
      if (xk == 0.0) continue;  // image data is half zeros
      const double* wk = w + k * C + c0;
      for (int j = 0; j < cn; ++j) z[j] += xk * wk[j];
    }
  }
  // g[k*C + c] += x_k * a[c] for all c.
  void add_outer(const double* a, int C, double* g) const {
    if (C == 1) {
      const Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> xv(x, d);
      Eigen::Map<Eigen::VectorXd> gv(g, d);
      gv += a[0] * xv.template cast<double>();
      return;
    }
    for (Index k = 0; k < d; ++k) {
      const double xk = static_cast<double>(x[k]);
      if (xk == 0.0) continue;
      double* gk = g + k * C;
      for (int c = 0; c < C; ++c) gk[c] += xk * a[c];
    }
  }
  double norm_squared() const {
    const Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> xv(x, d);
    return xv.template cast<double>().squaredNorm();
  }
  // Index of the first non-finite entry, or -1.
  Index first_non_finite() const {
    for (Index k = 0; k < d; ++k)
      if (!std::isfinite(static_cast<double>(x[k]))) return k;
    return -1;
  }
  double value_at(Index k) const { return static_cast<double>(x[k]); }
};

template <class S>
struct SparseRow {
  const std::int32_t* index;
  const S* value;
  Index count;
  void add_margins(const double* w, int C, int c0, int cn, double* z) const {
    if (C == 1) {
      double s = 0.0;
      for (Index p = 0; p < count; ++p) s += static_cast<double>(value[p]) * w[index[p]];
      z[0] += s;
      return;
    }
    for (Index p = 0; p < count; ++p) {
      const double xk = static_cast<double>(value[p]);
      const double* wk = w + static_cast<Index>(index[p]) * C + c0;
      for (int j = 0; j < cn; ++j) z[j] += xk * wk[j];
    }
  }
  void add_outer(const double* a, int C, double* g) const {
    for (Index p = 0; p < count; ++p) {
      const double xk = static_cast<double>(value[p]);
      double* gk = g + static_cast<Index>(index[p]) * C;
      for (int c = 0; c < C; ++c) gk[c] += xk * a[c];
    }
  }
  double norm_squared() const {
    double s = 0.0;
    for (Index p = 0; p < count; ++p) {
      const double v = static_cast<double>(value[p]);
      s += v * v;
    }
    return s;
  }
  Index first_non_finite() const {
    for (Index p = 0; p < count; ++p)
      if (!std::isfinite(static_cast<double>(value[p]))) return index[p];
    return -1;
  }
  double value_at(Index k) const {
    for (Index p = 0; p < count; ++p)
      if (index[p] == k) return static_cast<double>(value[p]);
    return 0.0;
  }
};

template <class S>
DenseRow<S> row_of(const DenseMatrix<S>& X, Index i) {
  return {X.data() + i * static_cast<Index>(X.cols()), static_cast<Index>(X.cols())};
}

template <class S>
SparseRow<S> row_of(const SparseMatrix<S>& X, Index i) {
  // Compressed storage is the contract, but an uncompressed matrix is read correctly too.
  const std::int32_t begin = X.outerIndexPtr()[i];
  const std::int32_t count =
      X.isCompressed() ? X.outerIndexPtr()[i + 1] - begin : X.innerNonZeroPtr()[i];
  return {X.innerIndexPtr() + begin, X.valuePtr() + begin, count};
}

// Calls f(row_of(X, i)) for every row, with the storage type resolved once.
template <class F>
void for_each_row(const Dataset& data, F&& f) {
  std::visit(
      [&](const auto& X) {
        const Index n = X.rows();
        for (Index i = 0; i < n; ++i) f(i, row_of(X, i));
      },
      data.X);
}

// Multinomial loss and derivative from the C margins. With m = max_c z_c attained at c = m_at:
//   loss = (m - z_y) + log1p(s),  s = sum_{c != m_at} exp(z_c - m)  (every exponent <= 0),
// and log1p keeps full relative precision when the sample is well classified (loss ~ s).
struct Softmax {
  double m = 0.0;
  int m_at = 0;
  double s = 0.0;  // sum over c != m_at of exp(z_c - m)
};

Softmax softmax_of(const double* z, int C) {
  Softmax r;
  r.m = z[0];
  for (int c = 1; c < C; ++c)
    if (z[c] > r.m) {
      r.m = z[c];
      r.m_at = c;
    }
  for (int c = 0; c < C; ++c)
    if (c != r.m_at) r.s += std::exp(z[c] - r.m);
  return r;
}

// Label index of a multinomial label, or -1 when it is not an integer in 0..C-1 (validate
// rejects such data; the check here only keeps a bad call from reading out of bounds).
int class_of(double y, int C) {
  if (!(y >= 0.0 && y < static_cast<double>(C))) return -1;
  const int k = static_cast<int>(y);
  return static_cast<double>(k) == y ? k : -1;
}

// Streaming log-sum-exp over chunks of margins, for loss_sum with any C without allocation.
struct StreamingLse {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0.0;  // sum exp(z_c - m) over the classes seen so far
  void add(const double* z, int n) {
    for (int j = 0; j < n; ++j) {
      if (z[j] > m) {
        s = s * std::exp(m - z[j]) + 1.0;
        m = z[j];
      } else {
        s += std::exp(z[j] - m);
      }
    }
  }
};

bool same_size(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w) {
  return objective.classes >= 1 && w.size() == data.cols() * objective.classes;
}

}  // namespace

const char* to_string(Loss loss) {
  switch (loss) {
    case Loss::logistic:
      return "logistic";
    case Loss::squared:
      return "squared";
    case Loss::multinomial:
      return "multinomial";
  }
  return "unknown";
}

Result<Loss> parse_loss(const std::string& name) {
  for (Loss l : {Loss::logistic, Loss::squared, Loss::multinomial})
    if (name == to_string(l)) return l;
  return Result<Loss>::failure("unknown loss '" + name +
                               "': expected one of logistic, squared, multinomial");
}

double Objective::beta() const {
  switch (loss) {
    case Loss::logistic:
      return 0.25;
    case Loss::squared:
      return 1.0;
    case Loss::multinomial:
      return 0.5;
  }
  return kNaN;
}

Status validate(const Objective& objective, const Dataset& data) {
  const std::string src = where(data);
  if (!std::isfinite(objective.lambda) || objective.lambda < 0.0)
    return Status::error("objective: lambda must be finite and >= 0, got " +
                         format_double(objective.lambda));
  if (objective.loss == Loss::multinomial) {
    if (objective.classes < 2)
      return Status::error("objective: multinomial needs classes >= 2, got " +
                           std::to_string(objective.classes));
  } else if (objective.classes != 1) {
    return Status::error(std::string("objective: ") + to_string(objective.loss) +
                         " needs classes = 1, got " + std::to_string(objective.classes));
  }
  const Index n = data.rows();
  if (n == 0) return Status::error(src + ": no samples");
  if (data.cols() == 0) return Status::error(src + ": no features");
  if (data.y.size() != n)
    return Status::error(src + ": " + std::to_string(data.y.size()) + " labels for " +
                         std::to_string(n) + " rows");
  for (Index i = 0; i < n; ++i) {
    const double y = data.y[i];
    bool ok = false;
    const char* expected = "";
    switch (objective.loss) {
      case Loss::logistic:
        ok = (y == 1.0 || y == -1.0);
        expected = "-1 or +1 (see prepare_labels)";
        break;
      case Loss::squared:
        ok = std::isfinite(y);
        expected = "a finite value";
        break;
      case Loss::multinomial:
        ok = class_of(y, objective.classes) >= 0;
        expected = "an integer in 0..C-1";
        break;
    }
    if (!ok)
      return Status::error(
          src + ": row " + std::to_string(i) + ": label " + format_double(y) + " is not " +
          expected + " for the " + to_string(objective.loss) + " loss" +
          (objective.loss == Loss::multinomial ? " (C = " + std::to_string(objective.classes) + ")"
                                               : std::string()));
  }
  // Non-finite features would turn every margin they touch into NaN and poison the model.
  Status bad;
  std::visit(
      [&](const auto& X) {
        for (Index i = 0; i < n && bad.is_ok(); ++i) {
          const auto row = row_of(X, i);
          const Index k = row.first_non_finite();
          if (k >= 0)
            bad = Status::error(src + ": row " + std::to_string(i) + " column " +
                                std::to_string(k) + ": feature value " +
                                format_double(row.value_at(k)) + " is not finite");
        }
      },
      data.X);
  return bad;
}

Status prepare_labels(Dataset& data, const Objective& objective,
                      const std::vector<double>& positive, int first_class) {
  const std::string src = where(data);
  const Index n = data.rows();
  if (data.y.size() != n)
    return Status::error(src + ": " + std::to_string(data.y.size()) + " labels for " +
                         std::to_string(n) + " rows");
  Eigen::VectorXd& y = data.y;
  auto bad_label = [&](Index i, const std::string& why) {
    return Status::error(src + ": row " + std::to_string(i) + ": label " + format_double(y[i]) +
                         " " + why);
  };
  switch (objective.loss) {
    case Loss::logistic: {
      // Checked fully before anything is written, so a failure leaves the labels untouched.
      for (Index i = 0; i < n; ++i) {
        if (!std::isfinite(y[i])) return bad_label(i, "is not finite");
        if (positive.empty() && !(y[i] == 1.0 || y[i] == 0.0 || y[i] == -1.0))
          return bad_label(i, "is not one of -1, 0, 1 (give the positive classes to map it)");
      }
      for (Index i = 0; i < n; ++i) {
        const bool pos = positive.empty()
                             ? y[i] == 1.0
                             : std::find(positive.begin(), positive.end(), y[i]) != positive.end();
        y[i] = pos ? 1.0 : -1.0;
      }
      return Status::ok();
    }
    case Loss::squared:
      for (Index i = 0; i < n; ++i)
        if (!std::isfinite(y[i])) return bad_label(i, "is not finite");
      return Status::ok();
    case Loss::multinomial: {
      const int C = objective.classes;
      if (C < 2)
        return Status::error("objective: multinomial needs classes >= 2, got " + std::to_string(C));
      if (first_class != 0 && first_class != 1)
        return Status::error(src + ": the first class is " + std::to_string(first_class) +
                             ", expected 0 (labels 0..C-1) or 1 (labels 1..C)");
      for (Index i = 0; i < n; ++i)
        if (!std::isfinite(y[i]) || y[i] != std::floor(y[i]))
          return bad_label(i, "is not an integer class");
      // The same labels on every agent whatever classes its own rows hold: the first class is
      // a property of the data set, never guessed from one shard (a device holding classes
      // 3 and 4 alone must not read them as 2 and 3).
      const double shift = first_class;
      for (Index i = 0; i < n; ++i)
        if (class_of(y[i] - shift, C) < 0)
          return bad_label(
              i, "is outside " + std::to_string(first_class) + ".." +
                     std::to_string(C - 1 + first_class) +
                     (first_class == 0 && y[i] == C
                          ? " (labels 1.." + std::to_string(C) + ": give the first class as 1)"
                          : ""));
      if (shift != 0.0) y.array() -= shift;
      return Status::ok();
    }
  }
  return Status::error("objective: unknown loss");
}

double sample_loss(const Objective& objective, double y, const double* z) {
  switch (objective.loss) {
    case Loss::logistic: {
      // log(1 + exp(-t)) = max(-t, 0) + log1p(exp(-|t|)): the exponent is never positive.
      const double t = y * z[0];
      return std::max(-t, 0.0) + std::log1p(std::exp(-std::abs(t)));
    }
    case Loss::squared: {
      const double r = z[0] - y;
      return 0.5 * r * r;
    }
    case Loss::multinomial: {
      const int C = objective.classes;
      const int k = class_of(y, C);
      if (k < 0) return kNaN;
      const Softmax sm = softmax_of(z, C);
      return (sm.m - z[k]) + std::log1p(sm.s);
    }
  }
  return kNaN;
}

void sample_derivative(const Objective& objective, double y, const double* z, double* a) {
  switch (objective.loss) {
    case Loss::logistic: {
      // a = -y * sigma(-t), t = y z, with sigma evaluated from exp(-|t|) <= 1.
      const double t = y * z[0];
      const double e = std::exp(-std::abs(t));
      const double sigma_minus_t = t >= 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
      a[0] = -y * sigma_minus_t;
      return;
    }
    case Loss::squared:
      a[0] = z[0] - y;
      return;
    case Loss::multinomial: {
      const int C = objective.classes;
      const int k = class_of(y, C);
      if (k < 0) {
        for (int c = 0; c < C; ++c) a[c] = kNaN;
        return;
      }
      const Softmax sm = softmax_of(z, C);
      const double denom = 1.0 + sm.s;
      for (int c = 0; c < C; ++c) a[c] = (c == sm.m_at ? 1.0 : std::exp(z[c] - sm.m)) / denom;
      // p_k - 1 loses every digit when p_k ~ 1; when k is the arg max, 1 - p_k = s / (1 + s).
      a[k] = k == sm.m_at ? -sm.s / denom : a[k] - 1.0;
      return;
    }
  }
}

void margins(const Dataset& data, Index i, const Eigen::VectorXd& w, double* z) {
  const Index d = data.cols();
  const int C = d > 0 ? static_cast<int>(w.size() / d) : 1;
  std::visit(
      [&](const auto& X) {
        const auto row = row_of(X, i);
        for (int c = 0; c < C; ++c) z[c] = 0.0;
        for (int c0 = 0; c0 < C; c0 += kClassChunk)
          row.add_margins(w.data(), C, c0, std::min(kClassChunk, C - c0), z + c0);
      },
      data.X);
}

double loss_sum(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w) {
  if (!same_size(data, objective, w)) return kNaN;
  const int C = objective.classes;
  double total = 0.0;
  double z[kClassChunk];
  for_each_row(data, [&](Index i, const auto& row) {
    const double y = data.y[i];
    if (C <= kClassChunk) {
      for (int c = 0; c < C; ++c) z[c] = 0.0;
      row.add_margins(w.data(), C, 0, C, z);
      total += sample_loss(objective, y, z);
      return;
    }
    // Many classes: log-sum-exp streamed over chunks of margins held on the stack.
    const int k = class_of(y, C);
    if (k < 0) {
      total += kNaN;
      return;
    }
    StreamingLse lse;
    double zy = 0.0;
    for (int c0 = 0; c0 < C; c0 += kClassChunk) {
      const int cn = std::min(kClassChunk, C - c0);
      for (int j = 0; j < cn; ++j) z[j] = 0.0;
      row.add_margins(w.data(), C, c0, cn, z);
      if (k >= c0 && k < c0 + cn) zy = z[k - c0];
      lse.add(z, cn);
    }
    total += (lse.m - zy) + std::log(lse.s);
  });
  return total;
}

double objective_value(const Dataset& data, const Objective& objective, const Eigen::VectorXd& w,
                       Eigen::VectorXd* gradient) {
  const int C = std::max(objective.classes, 1);
  const Index n = data.rows();
  if (!same_size(data, objective, w)) {
    if (gradient) gradient->setConstant(data.cols() * C, kNaN);
    return kNaN;
  }
  // With no rows the data term is taken as 0 (validate rejects empty data sets).
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  const double reg = 0.5 * objective.lambda * w.squaredNorm();
  if (!gradient) return loss_sum(data, objective, w) * inv_n + reg;

  gradient->setZero(w.size());
  // Per-call scratch of 2C doubles (C margins, C derivatives): independent of n.
  std::vector<double> scratch(2 * static_cast<std::size_t>(C));
  double* z = scratch.data();
  double* a = z + C;
  double total = 0.0;
  for_each_row(data, [&](Index i, const auto& row) {
    for (int c = 0; c < C; ++c) z[c] = 0.0;
    for (int c0 = 0; c0 < C; c0 += kClassChunk)
      row.add_margins(w.data(), C, c0, std::min(kClassChunk, C - c0), z + c0);
    const double y = data.y[i];
    total += sample_loss(objective, y, z);
    sample_derivative(objective, y, z, a);
    row.add_outer(a, C, gradient->data());
  });
  *gradient *= inv_n;
  *gradient += objective.lambda * w;
  return total * inv_n + reg;
}

double combine_objective(double loss_sum_total, Index total_samples, double lambda,
                         const Eigen::VectorXd& w) {
  if (total_samples <= 0) return kNaN;
  return loss_sum_total / static_cast<double>(total_samples) + 0.5 * lambda * w.squaredNorm();
}

double max_smoothness(const Dataset& data, const Objective& objective) {
  double max_norm = 0.0;
  for_each_row(data,
               [&](Index, const auto& row) { max_norm = std::max(max_norm, row.norm_squared()); });
  return objective.beta() * max_norm + objective.lambda;
}

}  // namespace dsaga
