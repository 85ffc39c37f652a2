// Data for the local-solver benchmarks: generated, seeded problems (so every run and machine
// measures the same thing) and the streaming-read probe that gives the memory floor.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dsaga/dataset.hpp"

namespace dsaga::bench {

// How the columns of a sparse row are drawn:
//   uniform  from 0..d-1, so no column is "hot": the worst case for caches;
//   zipf     column of popularity rank r with probability proportional to 1 / r^1.1 (a
//            heavy tail like that of word or hashed features), the ranks scattered over 0..d-1
//            by a seeded permutation (hot columns are not neighbours).
enum class Columns { uniform, zipf };

// n rows of d features in CSR float32, each row `nnz` distinct columns drawn by `columns`,
// values uniform in (0, 1] scaled to unit row norm, labels +-1 from a planted model (a learnable
// problem, not noise). Same seed and n, nnz give the same values and labels for every d and
// column law; only the column indices differ.
Dataset sparse_problem(Index n, Index d, int nnz, std::uint64_t seed,
                       Columns columns = Columns::uniform);

// n x d dense, float32 or float64, entries uniform in [0, 1) scaled to unit row norm, labels +-1.
Dataset dense_problem(Index n, Index d, Precision precision, std::uint64_t seed);

// Reads `bytes` bytes from `data` once, with as little work per byte as the core allows (64-bit
// integer adds), and returns a value that depends on every byte so the read cannot be optimised
// away. How one core pulls memory fastest depends on the machine (its hardware prefetchers, how
// many misses it tracks), so there are several ways; the fastest one's time is the floor of one
// pass:
//   sequential  front to back, left to the hardware prefetchers;
//   prefetched  front to back, with a software prefetch 4 KiB ahead;
//   streams4/8  the bytes cut into 4 or 8 parts, read side by side (more streams in flight).
enum class ReadMethod { sequential, prefetched, streams4, streams8 };
inline constexpr ReadMethod kReadMethods[] = {ReadMethod::sequential, ReadMethod::prefetched,
                                              ReadMethod::streams4, ReadMethod::streams8};
std::uint64_t stream_read(const void* data, std::size_t bytes, ReadMethod method);
const char* to_string(ReadMethod method);

// Reads `rows` rows of `row_bytes` bytes each, in a random order with replacement (as SAGA draws
// them; generator seeded with `seed`), prefetching one row ahead: the floor of one epoch's reads
// in the order an epoch makes them, which costs more than the front-to-back pass (each row is a
// new stretch of memory for the DRAM and the prefetchers).
std::uint64_t random_rows_read(const void* data, std::size_t rows, std::size_t row_bytes,
                               std::uint64_t seed);

}  // namespace dsaga::bench
