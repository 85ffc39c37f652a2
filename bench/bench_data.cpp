#include "bench_data.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "dsaga/rng.hpp"

namespace dsaga::bench {

Dataset sparse_problem(Index n, Index d, int nnz, std::uint64_t seed, Columns law) {
  Rng values(seed), columns(seed ^ 0x5DEECE66DULL), labels(seed + 1);
  // Zipf: the cumulative weights of ranks 1..d, and where each rank's column sits.
  std::vector<double> cdf;
  std::vector<std::int32_t> column_of_rank;
  if (law == Columns::zipf) {
    cdf.resize(static_cast<std::size_t>(d));
    double total = 0.0;
    for (Index r = 0; r < d; ++r) {
      total += std::pow(static_cast<double>(r + 1), -1.1);
      cdf[static_cast<std::size_t>(r)] = total;
    }
    column_of_rank.resize(static_cast<std::size_t>(d));
    for (Index r = 0; r < d; ++r)
      column_of_rank[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(r);
    Rng shuffle(seed ^ 0x2545F4914F6CDD1DULL);
    for (Index r = d - 1; r > 0; --r) {  // Fisher-Yates
      const auto o = static_cast<Index>(shuffle.below(static_cast<std::uint64_t>(r + 1)));
      std::swap(column_of_rank[static_cast<std::size_t>(r)],
                column_of_rank[static_cast<std::size_t>(o)]);
    }
  }
  const auto draw = [&]() -> std::int32_t {
    if (law == Columns::uniform) {
      return static_cast<std::int32_t>(columns.below(static_cast<std::uint64_t>(d)));
    }
    const double u = columns.uniform() * cdf.back();
    const auto r = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
    return column_of_rank[static_cast<std::size_t>(std::min<std::ptrdiff_t>(r, d - 1))];
  };
  std::vector<Eigen::Triplet<float, std::int32_t>> entries;
  entries.reserve(static_cast<std::size_t>(n) * static_cast<std::size_t>(nnz));
  // A planted model over a few hundred "signal" columns keeps the problem learnable whatever d.
  std::vector<double> row(static_cast<std::size_t>(nnz));
  std::vector<std::int32_t> cols(static_cast<std::size_t>(nnz));
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    double norm2 = 0.0, margin = 0.0;
    for (int p = 0; p < nnz; ++p) {
      std::int32_t k;
      bool fresh;
      do {  // distinct columns within a row (CSR rows hold each column once)
        k = draw();
        fresh = true;
        for (int q = 0; q < p; ++q) fresh = fresh && cols[static_cast<std::size_t>(q)] != k;
      } while (!fresh);
      cols[static_cast<std::size_t>(p)] = k;
      row[static_cast<std::size_t>(p)] = 1.0 - values.uniform();
      norm2 += row[static_cast<std::size_t>(p)] * row[static_cast<std::size_t>(p)];
      margin += (p % 2 == 0 ? 1.0 : -1.0) * row[static_cast<std::size_t>(p)];
    }
    const double inv = 1.0 / std::sqrt(norm2);
    for (int p = 0; p < nnz; ++p)
      entries.emplace_back(static_cast<std::int32_t>(i), cols[static_cast<std::size_t>(p)],
                           static_cast<float>(row[static_cast<std::size_t>(p)] * inv));
    const bool flip = labels.uniform() < 0.1;
    y[i] = ((margin >= 0.0) != flip) ? 1.0 : -1.0;
  }
  SparseMatrix<float> X(n, d);
  X.setFromTriplets(entries.begin(), entries.end());
  X.makeCompressed();
  Dataset data;
  data.X = std::move(X);
  data.y = std::move(y);
  data.source = "generated sparse";
  advise_huge_pages(data);  // as load_data does (dataset.hpp)
  return data;
}

Dataset dense_problem(Index n, Index d, Precision precision, std::uint64_t seed) {
  Rng rng(seed);
  DenseMatrix<double> X(n, d);
  Eigen::VectorXd y(n);
  for (Index i = 0; i < n; ++i) {
    for (Index k = 0; k < d; ++k) X(i, k) = rng.uniform();
    X.row(i) /= X.row(i).norm();
    y[i] = rng.uniform() < 0.5 ? -1.0 : 1.0;
  }
  Dataset data;
  if (precision == Precision::f32) {
    data.X = DenseMatrix<float>(X.cast<float>());
  } else {
    data.X = std::move(X);
  }
  data.y = std::move(y);
  data.source = "generated dense";
  advise_huge_pages(data);
  return data;
}

namespace {
// Adds the 64-byte line at p + i, as eight words, into two chains.
inline void sum_words(const unsigned char* p, std::size_t i, std::uint64_t& a, std::uint64_t& b) {
  std::uint64_t w[8];
  std::memcpy(w, p + i, sizeof w);
  a += (w[0] + w[1]) + (w[2] + w[3]);
  b += (w[4] + w[5]) + (w[6] + w[7]);
}
}  // namespace

std::uint64_t stream_read(const void* data, std::size_t bytes, ReadMethod method) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t a = 0, b = 0;
  const std::size_t lines = bytes / 64;
  switch (method) {
    case ReadMethod::sequential:
      for (std::size_t l = 0; l < lines; ++l) sum_words(p, l * 64, a, b);
      break;
    case ReadMethod::prefetched: {  // software prefetch 4 KiB ahead of the loads
      for (std::size_t l = 0; l < lines; ++l) {
        __builtin_prefetch(p + l * 64 + 4096);
        sum_words(p, l * 64, a, b);
      }
      break;
    }
    case ReadMethod::streams4:
    case ReadMethod::streams8: {  // the bytes as 4 or 8 parts read side by side
      const std::size_t parts = method == ReadMethod::streams4 ? 4 : 8;
      const std::size_t per = lines / parts;
      for (std::size_t l = 0; l < per; ++l) {
        for (std::size_t s = 0; s < parts; ++s) sum_words(p, (s * per + l) * 64, a, b);
      }
      for (std::size_t l = per * parts; l < lines; ++l) sum_words(p, l * 64, a, b);
      break;
    }
  }
  for (std::size_t i = lines * 64; i < bytes; ++i) a += p[i];
  return a ^ b;
}

const char* to_string(ReadMethod method) {
  switch (method) {
    case ReadMethod::sequential: return "sequential";
    case ReadMethod::prefetched: return "prefetched";
    case ReadMethod::streams4: return "4 streams";
    default: return "8 streams";
  }
}

std::uint64_t random_rows_read(const void* data, std::size_t rows, std::size_t row_bytes,
                               std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  Rng rng(seed);
  std::uint64_t a = 0, b = 0;
  const std::size_t lines = row_bytes / 64;
  std::size_t r_1 = rng.below(rows), r_2 = rng.below(rows);  // the next two rows, prefetched
  for (std::size_t t = 0; t < rows; ++t) {
    const unsigned char* row = p + r_1 * row_bytes;
    const unsigned char* ahead = p + r_2 * row_bytes;
    r_1 = r_2;
    r_2 = rng.below(rows);
    for (std::size_t l = 0; l < lines; ++l) {
      __builtin_prefetch(ahead + l * 64);
      sum_words(row, l * 64, a, b);
    }
    __builtin_prefetch(ahead + row_bytes - 1);
    for (std::size_t i = lines * 64; i < row_bytes; ++i) a += row[i];
  }
  return a ^ b;
}

}  // namespace dsaga::bench
