// dsaga-bench-profile: the SAGA step under valgrind's callgrind, for bench/profile_step.sh
// (the profile behind the issue 6 figures in bench/RESULTS.md).
//
//   dsaga-bench-profile dense32 N STEPS   B1-shaped dense float32 rows (N x 785, generated)
//   dsaga-bench-profile sparse D STEPS    100000 CSR rows, ~100 non-zeros in d = D columns
//
// One warm-up run(STEPS), then the measured run(STEPS). Under callgrind (started with
// --instr-atstart=no) only the measured run is counted: the warm-up is simulated too, so the
// simulated caches hold what a steady-state run finds there, but its counts are zeroed. Outside
// valgrind the client requests do nothing.
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench_data.hpp"
#include "dsaga/saga.hpp"

int main(int argc, char** argv) {
  const bool dense = argc == 4 && std::strcmp(argv[1], "dense32") == 0;
  const bool sparse = argc == 4 && std::strcmp(argv[1], "sparse") == 0;
  const long long p = argc == 4 ? std::atoll(argv[2]) : 0;
  const long long steps = argc == 4 ? std::atoll(argv[3]) : 0;
  if (!(dense || sparse) || p <= 0 || steps <= 0) {
    std::fprintf(stderr, "usage: %s dense32 N STEPS | sparse D STEPS   (N, D, STEPS > 0)\n",
                 argv[0]);
    return 2;
  }
  const dsaga::Dataset data =
      dense ? dsaga::bench::dense_problem(p, 785, dsaga::Precision::f32, 3)
            : dsaga::bench::sparse_problem(100000, p, 100, 7);
  const dsaga::Objective obj{dsaga::Loss::logistic, 1.0 / static_cast<double>(data.rows()), 1};
  dsaga::SagaOptions options;
  options.seed = 1;
  dsaga::SagaSolver solver(data, obj, options);
  solver.init_table(Eigen::VectorXd::Zero(data.cols()));
  CALLGRIND_START_INSTRUMENTATION;
  solver.run(steps);  // warm-up
  CALLGRIND_ZERO_STATS;
  solver.run(steps);  // measured
  CALLGRIND_STOP_INSTRUMENTATION;
  CALLGRIND_DUMP_STATS_AT("measured run");
  std::printf("%s %lld: %lld steps on %lld x %lld, kernels %s, w[0] = %.17g\n", argv[1], p, steps,
              static_cast<long long>(data.rows()), static_cast<long long>(data.cols()),
              dsaga::dense_kernels(), solver.w()[0]);
  return 0;
}
