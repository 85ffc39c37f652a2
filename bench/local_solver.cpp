// dsaga-bench-local: the local-solver measurements of issue 6, side by side in one process.
//
//   1. resident memory of an agent-like process: B1 in float32 + one SagaSolver after an epoch,
//      against data bytes + table bytes (+ the solver's d-sized state);
//   2. the memory floor: one read of the very bytes an epoch reads (the f32 and the f64 copy of
//      B1's matrix), the fastest of several ways of reading (bench_data.hpp);
//   3. dsaga's SAGA epoch (n steps + w()) on B1, float32 and float64 storage;
//   4. the sparse width check: n x 2^14 and n x 2^20, ~100 non-zeros per row, same values
//      (--sparse-only: this section and its ratios alone);
//   5. ratios, including against scikit-learn's epoch when its times are given
//      (--sklearn-f64-ms / --sklearn-f32-ms, measured by bench/sklearn_epoch.py in the same run
//      of bench/local_solver.sh).
//
// Timings are repeated (--repeats, default 7); each line gives the minimum and the median of the
// thread's CPU time and of the wall time; ratios use the minimum CPU time (the least disturbed
// run on a shared machine).
// Output: a human-readable report; lines starting with "result " are key/value for scripts.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_data.hpp"
#include "dsaga/data_source.hpp"
#include "dsaga/objective.hpp"
#include "dsaga/saga.hpp"

namespace {

using dsaga::Index;

// Wall time and this thread's CPU time (CLOCK_THREAD_CPUTIME_ID: excludes the time the thread
// waits for a core, which on a shared 2-core machine can dominate the wall time). Ratios use
// the minimum CPU time; the wall times are printed alongside.
struct Timing {
  double min_ms = 0.0, median_ms = 0.0;  // wall
  double cpu_min_ms = 0.0, cpu_median_ms = 0.0;
};

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Minimum and median of each clock's samples (one per repeat).
Timing summarize(std::vector<double> wall, std::vector<double> cpu) {
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall.front(), wall[wall.size() / 2], cpu.front(), cpu[cpu.size() / 2]};
}

template <class F>
Timing time_repeated(int repeats, F&& body) {
  std::vector<double> ms, cpu;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = thread_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const auto t1 = std::chrono::steady_clock::now();
    cpu.push_back(thread_cpu_ms() - c0);
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return summarize(std::move(ms), std::move(cpu));
}

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

volatile std::uint64_t g_sink = 0;
volatile double g_dsink = 0.0;

void report(const char* key, const char* what, const Timing& t) {
  std::printf("  %-40s cpu min %8.2f median %8.2f | wall min %8.2f median %8.2f ms\n", what,
              t.cpu_min_ms, t.cpu_median_ms, t.min_ms, t.median_ms);
  std::printf("result %s_cpu_min_ms %.4f\nresult %s_cpu_median_ms %.4f\n", key, t.cpu_min_ms, key,
              t.cpu_median_ms);
  std::printf("result %s_wall_min_ms %.4f\nresult %s_wall_median_ms %.4f\n", key, t.min_ms, key,
              t.median_ms);
}
void ratio(const char* key, const char* what, double value, const char* target) {
  std::printf("  %-58s %7.2fx   (target %s)\n", what, value, target);
  std::printf("result %s %.4f\n", key, value);
}

dsaga::Result<dsaga::Dataset> load_b1(dsaga::Precision precision, const dsaga::Objective& obj) {
  dsaga::DataSpec spec;
  spec.format = "fashion-mnist";
  spec.split = "train";
  spec.read.precision = precision;
  spec.scale = 1.0 / 255.0;
  spec.normalize_rows = true;
  spec.bias = true;
  spec.positive = {0, 2, 4, 6};
  return dsaga::load_data(spec, obj);
}

const void* matrix_bytes(const dsaga::Dataset& data, std::size_t* bytes) {
  return std::visit(
      [&](const auto& X) -> const void* {
        using M = std::decay_t<decltype(X)>;
        if constexpr (std::is_base_of_v<Eigen::SparseMatrixBase<M>, M>) {
          *bytes = 0;
          return nullptr;
        } else {
          *bytes = static_cast<std::size_t>(X.size()) * sizeof(typename M::Scalar);
          return X.data();
        }
      },
      data.X);
}

// One "epoch" as the agent runs it: n steps, then the iterate is read out.
Timing time_epochs(dsaga::SagaSolver& solver, int repeats) {
  const Index n = solver.data().rows();
  return time_repeated(repeats, [&] {
    solver.run(n);
    g_dsink = g_dsink + solver.w()[0];
  });
}

// Two bodies timed in alternation (a, b, a, b, ...), so that both see the same state of a
// shared machine (its memory bandwidth drifts with the neighbours' load): a ratio of the two
// minimums then compares like with like.
template <class A, class B>
std::pair<Timing, Timing> time_alternately(int repeats, A&& a, B&& b) {
  std::vector<double> a_wall, a_cpu, b_wall, b_cpu;
  for (int r = 0; r < repeats; ++r) {
    const Timing ta = time_repeated(1, a), tb = time_repeated(1, b);
    a_wall.push_back(ta.min_ms);
    a_cpu.push_back(ta.cpu_min_ms);
    b_wall.push_back(tb.min_ms);
    b_cpu.push_back(tb.cpu_min_ms);
  }
  return {summarize(std::move(a_wall), std::move(a_cpu)),
          summarize(std::move(b_wall), std::move(b_cpu))};
}

// Bytes of this process's anonymous memory backed by transparent huge pages.
std::size_t huge_page_bytes() {
  std::ifstream rollup("/proc/self/smaps_rollup");
  std::string key;
  std::size_t kb = 0;
  while (rollup >> key) {
    if (key == "AnonHugePages:") {
      rollup >> kb;
      return kb * 1024;
    }
    rollup.ignore(4096, '\n');
  }
  return 0;
}

// Section 4, the sparse width check: the same rows (n x ~100 non-zeros, same values) at
// d = 2^14 and d = 2^20; [0] is 2^14, [1] is 2^20.
struct SparseCheck {
  Timing run[2], epoch[2];
};

SparseCheck sparse_check(Index sparse_rows, int repeats, dsaga::bench::Columns law) {
  const bool zipf = law == dsaga::bench::Columns::zipf;
  std::printf("\nsparse logistic, %lld rows x ~100 non-zeros (%s columns), float32 CSR\n",
              static_cast<long long>(sparse_rows), zipf ? "Zipf(1.1)" : "uniform");
  SparseCheck out;
  const Index widths[2] = {Index(1) << 14, Index(1) << 20};
  for (int which = 0; which < 2; ++which) {
    const dsaga::Dataset data =
        dsaga::bench::sparse_problem(sparse_rows, widths[which], 100, 7, law);
    dsaga::Objective sobj{dsaga::Loss::logistic, 1.0 / static_cast<double>(sparse_rows), 1};
    dsaga::SagaOptions options;
    options.seed = 1;
    dsaga::SagaSolver solver(data, sobj, options);
    solver.init_table(Eigen::VectorXd::Zero(widths[which]));
    out.run[which] = time_repeated(repeats, [&] { solver.run(sparse_rows); });
    out.epoch[which] = time_epochs(solver, repeats);
    const std::string key =
        std::string(zipf ? "sparse_zipf_d2^" : "sparse_d2^") + std::to_string(which == 0 ? 14 : 20);
    report((key + "_steps").c_str(), (key + ": n steps").c_str(), out.run[which]);
    report((key + "_epoch").c_str(), (key + ": n steps + w()").c_str(), out.epoch[which]);
    // FNV-1a of w's bytes after all the timed steps: equal across builds iff the iterates are
    // bitwise equal (a speed change to the sparse step must not change it).
    const Eigen::VectorXd& w = solver.w();
    std::uint64_t h = 1469598103934665603ull;
    const auto* bytes = reinterpret_cast<const unsigned char*>(w.data());
    for (std::size_t b = 0; b < static_cast<std::size_t>(w.size()) * sizeof(double); ++b) {
      h = (h ^ bytes[b]) * 1099511628211ull;
    }
    std::printf("result %s_w_fnv1a %016llx\n", key.c_str(), static_cast<unsigned long long>(h));
  }
  return out;
}

// The target is on uniform columns (the worst case); the Zipf figures show what a
// heavy-tailed feature distribution does to the same ratio.
void sparse_ratios(const SparseCheck& s, const SparseCheck& zipf) {
  ratio("ratio_sparse_steps_2^20_vs_2^14", "sparse n steps, d = 2^20 / d = 2^14",
        s.run[1].cpu_min_ms / s.run[0].cpu_min_ms, "<= 1.2");
  ratio("ratio_sparse_epoch_2^20_vs_2^14", "sparse n steps + w(), d = 2^20 / d = 2^14",
        s.epoch[1].cpu_min_ms / s.epoch[0].cpu_min_ms, "<= 1.2");
  ratio("ratio_sparse_zipf_steps_2^20_vs_2^14", "sparse Zipf columns, n steps, 2^20 / 2^14",
        zipf.run[1].cpu_min_ms / zipf.run[0].cpu_min_ms, "none");
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 7;
  double sklearn_f64_ms = 0.0, sklearn_f32_ms = 0.0;
  Index sparse_rows = 100000;
  bool sparse_only = false;  // only section 4 and its ratios (no B1 needed)
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--repeats" && has_value) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--sklearn-f64-ms" && has_value) {
      sklearn_f64_ms = std::atof(argv[++i]);
    } else if (arg == "--sklearn-f32-ms" && has_value) {
      sklearn_f32_ms = std::atof(argv[++i]);
    } else if (arg == "--sparse-rows" && has_value) {
      sparse_rows = std::max<Index>(1, std::atoll(argv[++i]));
    } else if (arg == "--sparse-only") {
      sparse_only = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--repeats R] [--sklearn-f64-ms T] [--sklearn-f32-ms T] "
                   "[--sparse-rows n] [--sparse-only]\n",
                   argv[0]);
      return 2;
    }
  }
  if (sparse_only) {
    std::printf("repeats %d (min and median)\n", repeats);
    const SparseCheck sparse = sparse_check(sparse_rows, repeats, dsaga::bench::Columns::uniform);
    const SparseCheck zipf = sparse_check(sparse_rows, repeats, dsaga::bench::Columns::zipf);
    std::printf("\nratios (minimum thread CPU times of this run)\n");
    sparse_ratios(sparse, zipf);
    return 0;
  }
  const std::size_t rss_start = resident_bytes();

  // B1: logistic, lambda = 1/N (N = 60000), single node.
  dsaga::Objective obj{dsaga::Loss::logistic, 1.0 / 60000.0, 1};
  auto b1_32 = load_b1(dsaga::Precision::f32, obj);
  if (!b1_32) {
    std::fprintf(stderr, "B1 (float32): %s\n", b1_32.error().c_str());
    return 1;
  }
  const Index n = b1_32->rows(), d = b1_32->cols();
  obj.lambda = 1.0 / static_cast<double>(n);
  std::printf("B1: %s, %lld x %lld, lambda = 1/%lld; repeats %d (min and median)\n",
              b1_32->source.c_str(), static_cast<long long>(n), static_cast<long long>(d),
              static_cast<long long>(n), repeats);

  // --- 1. resident memory, agent-like: data + solver after an epoch and the round's reads ----
  {
    dsaga::SagaOptions options;
    options.seed = 1;
    dsaga::SagaSolver solver(*b1_32, obj, options);
    solver.init_table(Eigen::VectorXd::Zero(d));
    solver.run(n);
    g_dsink =
        g_dsink + solver.w()[0] + solver.delta_sum()[0] + solver.table_sum()[0] + solver.gbar()[0];
    const std::size_t rss = resident_bytes();
    const std::size_t data_bytes = b1_32->bytes();
    const std::size_t table_bytes =
        static_cast<std::size_t>(solver.table().size()) * sizeof(double);
    std::printf("\nresident memory (agent-like: B1 float32 + solver after one epoch)\n");
    std::printf("  process at start            %8.1f MB\n", rss_start / 1e6);
    std::printf("  process now                 %8.1f MB\n", rss / 1e6);
    std::printf("  data (X f32 + y)            %8.1f MB\n", data_bytes / 1e6);
    std::printf("  table (%lld x %d doubles)   %8.3f MB\n", static_cast<long long>(n),
                static_cast<int>(solver.table().cols()), table_bytes / 1e6);
    std::printf("  solver state (all)          %8.3f MB\n", solver.state_bytes() / 1e6);
    std::printf("  (now - start) / (data + table) = %.3f\n",
                double(rss - rss_start) / double(data_bytes + table_bytes));
    std::printf("  in transparent huge pages   %8.1f MB (load_data's advice; 0 where the kernel "
                "declines)\n", huge_page_bytes() / 1e6);
    std::printf("result rss_start_bytes %zu\nresult rss_bytes %zu\nresult data_bytes %zu\n",
                rss_start, rss, data_bytes);
    std::printf("result table_bytes %zu\nresult solver_state_bytes %zu\n", table_bytes,
                solver.state_bytes());
  }

  auto b1_64 = load_b1(dsaga::Precision::f64, obj);
  if (!b1_64) {
    std::fprintf(stderr, "B1 (float64): %s\n", b1_64.error().c_str());
    return 1;
  }

  // --- 2. the floor: one pass over the bytes an epoch reads --------------------------------
  // Every read method of bench_data.hpp is timed; the fastest is the floor (the least time one
  // core needs to bring these bytes in), the others show how much that depends on the way of
  // reading. Section 3 times the fastest again, alternately with the epochs.
  std::printf(
      "\nmemory floor: one read of B1's matrix, by each method; the fastest is the floor\n");
  std::size_t bytes32 = 0, bytes64 = 0;
  const void* p32 = matrix_bytes(*b1_32, &bytes32);
  const void* p64 = matrix_bytes(*b1_64, &bytes64);
  const auto fastest = [&](const char* precision, const void* p, std::size_t bytes) {
    dsaga::bench::ReadMethod best = dsaga::bench::ReadMethod::sequential;
    double best_ms = 0.0;
    for (const auto method : dsaga::bench::kReadMethods) {
      const Timing t = time_repeated(
          repeats, [&] { g_sink = g_sink + dsaga::bench::stream_read(p, bytes, method); });
      std::printf("  read X %s, %-10s   cpu min %8.2f ms  %5.1f GB/s\n", precision,
                  dsaga::bench::to_string(method), t.cpu_min_ms, bytes / t.cpu_min_ms / 1e6);
      if (best_ms == 0.0 || t.cpu_min_ms < best_ms) {
        best = method;
        best_ms = t.cpu_min_ms;
      }
    }
    return best;
  };
  const auto method32 = fastest("float32", p32, bytes32);
  const auto method64 = fastest("float64", p64, bytes64);

  // --- 3. dsaga's epoch on B1, alternately with the floor --------------------------------------
  std::printf(
      "\ndsaga local SAGA epoch on B1 (n steps + w(), from the table at w = 0), timed "
      "alternately\nwith the floor (fastest read method) so that both see the same machine\n");
  Timing floor32, floor64, epoch32, epoch64;
  double F32 = 0.0, F64 = 0.0;
  {
    dsaga::SagaOptions options;
    options.seed = 1;
    dsaga::SagaSolver s32(*b1_32, obj, options);
    s32.init_table(Eigen::VectorXd::Zero(d));
    std::tie(floor32, epoch32) = time_alternately(
        repeats,
        [&] { g_sink = g_sink + dsaga::bench::stream_read(p32, bytes32, method32); },
        [&] {
          s32.run(n);
          g_dsink = g_dsink + s32.w()[0];
        });
    F32 = dsaga::objective_value(*b1_32, obj, s32.w());
    dsaga::SagaSolver s64(*b1_64, obj, options);
    s64.init_table(Eigen::VectorXd::Zero(d));
    std::tie(floor64, epoch64) = time_alternately(
        repeats,
        [&] { g_sink = g_sink + dsaga::bench::stream_read(p64, bytes64, method64); },
        [&] {
          s64.run(n);
          g_dsink = g_dsink + s64.w()[0];
        });
    F64 = dsaga::objective_value(*b1_64, obj, s64.w());
  }
  // The same bytes in the epoch's order (random rows): not the target's floor, but what the
  // access pattern alone costs.
  const Timing rows32 = time_repeated(repeats, [&] {
    g_sink = g_sink + dsaga::bench::random_rows_read(p32, static_cast<std::size_t>(n),
                                                     bytes32 / static_cast<std::size_t>(n), 1);
  });
  const Timing rows64 = time_repeated(repeats, [&] {
    g_sink = g_sink + dsaga::bench::random_rows_read(p64, static_cast<std::size_t>(n),
                                                     bytes64 / static_cast<std::size_t>(n), 1);
  });
  report("floor_f32", (std::string("floor: read X float32, ") +
                       dsaga::bench::to_string(method32)).c_str(), floor32);
  report("dsaga_f32", "dsaga epoch, float32 storage", epoch32);
  report("floor_f64", (std::string("floor: read X float64, ") +
                       dsaga::bench::to_string(method64)).c_str(), floor64);
  report("dsaga_f64", "dsaga epoch, float64 storage", epoch64);
  report("rows_f32", "read X float32 rows in random order", rows32);
  report("rows_f64", "read X float64 rows in random order", rows64);
  std::printf("  bandwidth (min cpu time)   f32 %.1f GB/s   f64 %.1f GB/s\n",
              bytes32 / floor32.cpu_min_ms / 1e6, bytes64 / floor64.cpu_min_ms / 1e6);
  std::printf("  F after %d epochs: f32 %.12f  f64 %.12f (sanity: both descend alike)\n", repeats,
              F32, F64);
  std::printf("  kernels: %s (DSAGA_SIMD caps them; lib/src/simd.hpp)\n", dsaga::dense_kernels());
  b1_64 = dsaga::Result<dsaga::Dataset>(dsaga::Dataset{});

  // --- 4. sparse: d = 2^14 vs d = 2^20, same rows and nnz -------------------------------------
  const SparseCheck sparse = sparse_check(sparse_rows, repeats, dsaga::bench::Columns::uniform);
  const SparseCheck zipf = sparse_check(sparse_rows, repeats, dsaga::bench::Columns::zipf);

  // --- 5. ratios (minimum times) -------------------------------------------------------------
  std::printf(
      "\nratios (minimum thread CPU times of this run; sklearn: minimum wall time of "
      "fit(max_iter=1))\n");
  ratio("ratio_dense_f32_vs_floor", "dsaga f32 epoch / floor f32",
        epoch32.cpu_min_ms / floor32.cpu_min_ms, "<= 1.5");
  ratio("ratio_dense_f64_vs_floor", "dsaga f64 epoch / floor f64",
        epoch64.cpu_min_ms / floor64.cpu_min_ms, "<= 1.5");
  std::printf("  (dsaga epoch / the same rows read in random order: f32 %.2fx, f64 %.2fx)\n",
              epoch32.cpu_min_ms / rows32.cpu_min_ms, epoch64.cpu_min_ms / rows64.cpu_min_ms);
  if (sklearn_f64_ms > 0.0) {
    ratio("speedup_f32_vs_sklearn_f64", "sklearn SAGA epoch (f64) / dsaga f32 epoch",
          sklearn_f64_ms / epoch32.cpu_min_ms, ">= 10");
    ratio("speedup_f64_vs_sklearn_f64", "sklearn SAGA epoch (f64) / dsaga f64 epoch",
          sklearn_f64_ms / epoch64.cpu_min_ms, ">= 10");
  }
  if (sklearn_f32_ms > 0.0) {
    ratio("speedup_f32_vs_sklearn_f32", "sklearn SAGA epoch (f32 input) / dsaga f32 epoch",
          sklearn_f32_ms / epoch32.cpu_min_ms, ">= 10");
  }
  sparse_ratios(sparse, zipf);
  return 0;
}
