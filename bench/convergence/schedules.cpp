// Fast exploration of dSAGA round schedules, without sockets: K SagaSolvers over the shards of
// Fashion-MNIST B1 (rows normalised, bias, classes {0,2,4,6} positive) driven in one thread,
// with the exact objective after every round. For trying schedules before they go into the hub
// (bench/RESULTS.md, issue 4); the benchmark of record is dsaga-bench-convergence.
//
// Usage: dsaga-bench-schedules SCHEDULE K PARTITION T_FRACTION ETA_SCALE ETA_G ROUNDS
//                              [LIMIT [LAMBDA [MU]]]
//   SCHEDULE   mean (all agents from the same state, weighted mean of dw) or cyclic (agents
//              take turns from the latest state, each update applied in full)
//   T_FRACTION local steps as a fraction of n_k; ETA_SCALE: eta = ETA_SCALE / (3 L_max)
//   LIMIT      first rows of the *test* split only (0 = the whole training set)
//   LAMBDA     0 = 1/N;  MU: local proximal term (0 = none)
// Prints the rounds to 1e-3, 1e-6 and 1e-8 (0 = not reached); VERBOSE=1 prints every round.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>
#include "dsaga/data_source.hpp"
#include "dsaga/reference.hpp"
#include "dsaga/saga.hpp"
#include "dsaga/hub.hpp"
using namespace dsaga;
int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: %s SCHEDULE K PARTITION T_FRACTION ETA_SCALE ETA_G ROUNDS [LIMIT [LAMBDA [MU]]]\n", argv[0]);
    return 2;
  }
  std::string schedule = argv[1];       // mean | cyclic
  int K = std::atoi(argv[2]);
  std::string part = argv[3];           // iid | by-label
  double tfrac = std::atof(argv[4]);    // T = tfrac * n_k
  double eta_scale = std::atof(argv[5]);// eta = eta_scale / (3 L)
  double eta_g = std::atof(argv[6]);
  int rounds = std::atoi(argv[7]);
  long limit = argc > 8 ? std::atol(argv[8]) : 0;
  double lambda_arg = argc > 9 ? std::atof(argv[9]) : 0;
  double mu = argc > 10 ? std::atof(argv[10]) : 0;  // proximal term mu/2 ||w - w_r||^2 (emulated)
  DataSpec spec; spec.format = "fashion-mnist"; spec.split = limit ? "test" : "train"; spec.limit = limit;
  spec.scale = 1.0/255; spec.normalize_rows = true; spec.bias = true; spec.positive = {0,2,4,6};
  Objective obj; obj.loss = Loss::logistic;
  auto full = load_data(spec, obj);
  if (!full) { std::fprintf(stderr, "%s\n", full.error().c_str()); return 1; }
  const Index N = full->rows(), d = full->cols();
  obj.lambda = lambda_arg > 0 ? lambda_arg : 1.0 / N;
  double fstar;
  { auto r = solve_reference(*full, obj); fstar = r->value; }
  std::vector<Dataset> shards;
  for (int k = 0; k < K; ++k) { DataSpec s = spec; s.shards = K; s.shard = k; s.partition = *parse_partition(part); shards.push_back(*load_data(s, obj)); }
  double lmax = max_smoothness(*full, obj);
  double eta = eta_scale / (3 * lmax);
  std::vector<std::unique_ptr<SagaSolver>> sol;
  Eigen::VectorXd w = Eigen::VectorXd::Zero(d), gbar = Eigen::VectorXd::Zero(d);
  for (int k = 0; k < K; ++k) {
    Objective local = obj; local.lambda += mu;
    sol.emplace_back(new SagaSolver(shards[k], local, SagaOptions{eta, N, agent_seed(0, "a" + std::to_string(k))}));
    sol[k]->init_table(w);
    gbar += sol[k]->table_sum();
  }
  gbar /= double(N);
  int hit3 = 0, hit6 = 0, hit8 = 0;
  for (int r = 1; r <= rounds; ++r) {
    if (schedule == "mean") {
      Eigen::VectorXd dw = Eigen::VectorXd::Zero(d), ds = Eigen::VectorXd::Zero(d);
      const Eigen::VectorXd gshift = gbar - mu * w;
      for (int k = 0; k < K; ++k) {
        sol[k]->set_state(w, gshift);
        sol[k]->run(Index(tfrac * shards[k].rows()));
        dw += double(shards[k].rows()) / N * (sol[k]->w() - w);
        ds += sol[k]->delta_sum();
      }
      w += eta_g * dw; gbar += ds / double(N);
    } else {  // cyclic
      for (int k = 0; k < K; ++k) {
        sol[k]->set_state(w, gbar);
        sol[k]->run(Index(tfrac * shards[k].rows()));
        w += eta_g * (sol[k]->w() - w);
        gbar += sol[k]->delta_sum() / double(N);
      }
    }
    { Eigen::VectorXd S = Eigen::VectorXd::Zero(d); for (int k = 0; k < K; ++k) S += sol[k]->table_sum();
      if (getenv("VERBOSE")) std::fprintf(stderr, "  inv %.3e\n", (gbar - S / double(N)).lpNorm<Eigen::Infinity>()); }
    double f = objective_value(*full, obj, w);
    double s = (f - fstar) / fstar;
    if (!hit3 && s <= 1e-3) hit3 = r;
    if (!hit6 && s <= 1e-6) hit6 = r;
    if (!hit8 && s <= 1e-8) hit8 = r;
    if (getenv("VERBOSE") || r % 10 == 0) std::fprintf(stderr, "  r %d s %.3e\n", r, s);
    if (!std::isfinite(s) || s > 1e6) break;
    if (hit8) break;
  }
  std::printf("%s K=%d %s T=%.3gn_k eta=%.3g/(3L) eta_g=%g mu=%g: 1e-3@%d 1e-6@%d 1e-8@%d\n", schedule.c_str(), K, part.c_str(), tfrac, eta_scale, eta_g, mu, hit3, hit6, hit8);
}
