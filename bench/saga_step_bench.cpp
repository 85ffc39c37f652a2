// Google Benchmark micro-benchmarks of the SAGA step (saga.hpp), on generated, seeded data:
//   dense, d = 785 (Fashion-MNIST's width), float32 and float64 storage, with n rows that fit
//   in L2 (128), in L2 + L3 (1024) or as many as B1 (60000, the data streams from memory);
//   sparse CSR float32, ~100 non-zeros per row, d = 2^14 and d = 2^20 (the cost per step must
//   not depend on d).
// One iteration = 1000 steps; items/s is steps per second. Timings live here and in
// bench/RESULTS.md, never in unit tests.
#include <benchmark/benchmark.h>

#include "bench_data.hpp"
#include "dsaga/saga.hpp"

namespace {

using dsaga::Index;
constexpr Index kStepsPerIteration = 1000;

void run_steps(benchmark::State& state, const dsaga::Dataset& data) {
  const dsaga::Objective obj{dsaga::Loss::logistic, 1.0 / static_cast<double>(data.rows()), 1};
  dsaga::SagaOptions options;
  options.seed = 1;
  dsaga::SagaSolver solver(data, obj, options);
  solver.init_table(Eigen::VectorXd::Zero(data.cols()));
  for (auto _ : state) {
    solver.run(kStepsPerIteration);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kStepsPerIteration);
  benchmark::DoNotOptimize(solver.w()[0]);
}

void BM_DenseStep_f32(benchmark::State& state) {
  run_steps(state, dsaga::bench::dense_problem(state.range(0), 785, dsaga::Precision::f32, 3));
}
void BM_DenseStep_f64(benchmark::State& state) {
  run_steps(state, dsaga::bench::dense_problem(state.range(0), 785, dsaga::Precision::f64, 3));
}
void BM_SparseStep_f32(benchmark::State& state) {
  run_steps(state, dsaga::bench::sparse_problem(20000, Index(1) << state.range(0), 100, 7));
}

BENCHMARK(BM_DenseStep_f32)->Arg(128)->Arg(1024)->Arg(60000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DenseStep_f64)->Arg(1024)->Arg(60000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SparseStep_f32)->Arg(14)->Arg(20)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
