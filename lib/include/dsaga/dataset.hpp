// Data sets: n samples (rows) of d features, stored dense row-major or CSR sparse, in float32
// or float64, with one label per sample.
//
// Contract:
// - Labels are stored as read (`y`); `prepare_labels` maps them to what a loss expects:
//   logistic {-1,+1}, squared real values, multinomial class indices 0..C-1 stored as doubles.
// - Feature storage is chosen when the data is loaded and never changes afterwards; solvers
//   dispatch on it once (std::visit) and run a loop specialised for it.
// - float32 storage halves memory and bandwidth; every reduction (dot products, sums) is
//   accumulated in float64 by the code that reads the matrix.
#pragma once

#include <Eigen/Dense>
#include <Eigen/SparseCore>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "dsaga/status.hpp"

namespace dsaga {

using Index = std::int64_t;

template <class S>
using DenseMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// Compressed row storage (CSR); always kept compressed (makeCompressed()).
template <class S>
using SparseMatrix = Eigen::SparseMatrix<S, Eigen::RowMajor, std::int32_t>;

// No data set has more columns: CSR storage indexes them in 32 bits (a reader refuses wider
// input); a model that wide is refused where a message asks for it.
inline constexpr Index kMaxColumns = std::numeric_limits<std::int32_t>::max();

using Features =
    std::variant<DenseMatrix<float>, DenseMatrix<double>, SparseMatrix<float>, SparseMatrix<double>>;

enum class Precision { f32, f64 };
enum class Storage { dense, sparse };

struct Dataset {
  Features X = DenseMatrix<double>();
  Eigen::VectorXd y;   // one label per row
  std::string source;  // where it came from, for messages ("train.svm", "fashion-mnist[shard 3/8]")

  Index rows() const;
  Index cols() const;
  Index nnz() const;  // stored entries (rows*cols when dense)
  bool is_sparse() const;
  Precision precision() const;
  // Bytes held by the feature storage and labels.
  std::size_t bytes() const;
};

// Converts the storage (dense <-> sparse, f32 <-> f64). Exact except f64 -> f32 rounding;
// dense -> sparse stores only the non-zero entries.
Dataset convert(const Dataset& data, Storage storage, Precision precision);

// Feature transforms, in place, for every storage and precision. Arithmetic is done in double and
// rounded once to the storage precision, so dense and CSR storage of the same data give
// bit-identical results; CSR stays compressed.
void scale_features(Dataset& data, double factor);
// Scales each row to unit L2 norm; all-zero rows are left as they are.
void normalize_rows(Dataset& data);
// Appends a constant feature (the bias) as the last column.
void append_constant(Dataset& data, double value = 1.0);
// Widens the data to `cols` columns (>= its own) whose new ones are zeros, in place: a LIBSVM
// shard narrower than the model (a missing feature is a zero). With `bias_last` the data's last
// column is append_constant's and stays the last: the zeros go in before it. CSR storage gains
// no entries and is not copied; dense storage becomes CSR of the same precision (a dense copy
// of a few columns widened to a wide model would be mostly zeros). cols <= kMaxColumns.
void widen(Dataset& data, Index cols, bool bias_last);

// Squared L2 norm of every row, accumulated in double.
Eigen::VectorXd row_norms_squared(const Dataset& data);

// Asks the operating system to back the feature storage with huge pages (Linux: transparent
// huge pages, collapsed now), because SAGA reads rows at random places and 4 KiB pages make
// nearly every row a TLB miss. Only advice: contents, results and errors do not depend on it,
// and it does nothing where the system declines. load_data calls it on what it returns; call it
// on a Dataset built by other means before training on it.
void advise_huge_pages(const Dataset& data);

// Rows `rows` of `data`, in that order (a shard). Storage and precision are kept. An index
// outside 0..rows()-1 is a programming error: std::out_of_range.
Dataset select_rows(const Dataset& data, const std::vector<Index>& rows);

// --- partitions (ALGORITHM.md section 5) ----------------------------------------------------
enum class PartitionKind {
  iid,        // random permutation with a seed, then K contiguous chunks
  by_label,   // stable sort by label, then K contiguous chunks (non-IID)
  dirichlet,  // per label, shard proportions drawn from Dirichlet(alpha) (non-IID, unequal)
};
// K shards of row indices covering every row exactly once, none empty. Deterministic for
// (n, K, kind, seed, labels, alpha) on every platform.
// - iid: a Fisher-Yates shuffle drawn with Rng(seed).below, cut into K contiguous chunks;
//   by_label: a std::stable_sort of the row indices by label (NaN last), cut likewise. For both,
//   sizes differ by at most one (the first n % K shards hold one row more).
// - dirichlet (Hsu, Qi and Brown 2019): for each distinct label in ascending order (NaN last, all
//   NaN labels one class), proportions p ~ Dirichlet(alpha, ..., alpha) over the K shards; the
//   class's rows, shuffled, go to the shards in order, shard k taking floor(p_k n_c) of them and
//   the rows left over going one each to the shards with the largest remainders (ties: lower k).
//   Small alpha gives each shard few classes and very unequal sizes; large alpha tends to iid.
//   A shard still empty at the end takes the last row of the currently largest shard (ties:
//   lower k), so no shard is empty. Each shard lists its rows in ascending order. All draws come
//   from one Rng(seed) (gamma variates by Marsaglia-Tsang with normals by the polar method, and
//   log/exp computed with + - * / only, so no libm difference changes a draw). `alpha` is read
//   only for dirichlet and must be finite and > 0 there.
// Empty shards are not allowed: `shards` must be in 1..rows() (and by_label and dirichlet need
// one label per row); anything else is a programming error and throws std::invalid_argument.
// load_data checks first and reports a configuration error instead.
std::vector<std::vector<Index>> partition(const Dataset& data, int shards, PartitionKind kind,
                                          std::uint64_t seed, double alpha = 0.0);

}  // namespace dsaga
