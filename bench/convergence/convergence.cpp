// Convergence benchmark (ALGORITHM.md sections 3 to 5): dSAGA and its baselines through the same
// hub and agent state machines, event loops, wire codec and ZeroMQ sockets as the daemons, here
// in one process over inproc:// (one thread per agent), so the data set is loaded once for a
// whole grid of runs. Bytes are the transport's ZMTP-framed counters, the same as over tcp.
//
// For each algorithm and each step size of its grid it writes one metrics file
// (OUT/<tag>-<algorithm>-eta<x>.csv) and prints one summary line: rounds, bytes per agent
// (both directions), local gradient evaluations and wall time to reach 1e-3 and 1e-6; the
// final suboptimality; the peak, the largest (F - F*)/F* of the run (the start included); and
// the bytes per agent of one round (the mean over rounds 2..last) and of the one-time setup
// (the bytes at the end of round 1 less one round's: the table upload, and for two-level dSAGA
// the basis upload and download). The problems B1, B2, S1 and D1 are described, with exactly
// how they are built, in problems.hpp.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "dsaga/data_source.hpp"
#include "dsaga/local_method.hpp"
#include "dsaga/reference.hpp"
#include "dsaga/service.hpp"
#include "problems.hpp"

namespace {

using namespace dsaga;

struct Point {
  std::uint64_t round = 0;
  double objective = NAN, suboptimality = NAN, bytes_per_agent = 0, evaluations = 0, seconds = 0;
  double step_scale = 1.0;  // two-level's guard: the scale of the local step and coarse step
  bool reverted = false;    // ... and whether it sent the model back this round
  // Outer rounds: rounds that measured F (every round but Newton-CG's product exchanges, which
  // the round number counts like any other message round trip).
  std::uint64_t outer = 0;
  std::string mode, kind;   // the mode that ran the round, and what it asked (run, gradient, product)
};

struct Threshold {
  bool reached = false;
  Point at;
};

std::vector<Point> run_once(const std::vector<Dataset>& shards, HubOptions options,
                            const Objective& objective) {
  TransportContext context;
  static int counter = 0;
  const std::string endpoint = "inproc://bench-" + std::to_string(counter++);
  // Frames up to 256 MiB (the daemons' transport.max_message_mb, default 64): two-level dSAGA's
  // setup on S1 sends each agent U on its support, |support| x 64 float64 = up to 72 MB, and a
  // frame over the limit is dropped on receipt, which leaves that agent waiting for ever.
  TransportOptions transport;
  transport.max_message_bytes = std::size_t(256) << 20;
  auto server = ServerSocket::bind(context, endpoint, transport);
  if (!server) throw std::runtime_error(server.error());
  HubCore hub(options);
  std::vector<Point> points;
  double evaluations = 0;
  const double start = monotonic_seconds();
  HubServiceOptions service;
  service.linger_seconds = 0.05;
  service.on_report = [&](const RoundReport& r, const TrafficCounters& t) {
    // Gradient evaluations: the rounds' local steps, plus the init pass of the methods that
    // start from local gradients (dSAGA's table, SCAFFOLD's control variates).
    if (r.round == 0 && (options.algorithm == msg::Algorithm::dsaga ||
                         options.algorithm == msg::Algorithm::scaffold))
      evaluations += static_cast<double>(hub.total_samples());
    evaluations += static_cast<double>(r.local_steps);
    Point p;
    p.round = r.round;
    p.objective = r.objective;
    p.suboptimality = r.suboptimality;
    p.bytes_per_agent = static_cast<double>(t.bytes_in + t.bytes_out) / shards.size();
    p.evaluations = evaluations;
    p.seconds = monotonic_seconds() - start;
    p.step_scale = r.step_scale;
    p.reverted = r.reverted;
    p.outer = (points.empty() ? 0 : points.back().outer) +
              (r.round > 0 && r.kind != msg::RoundKind::product ? 1 : 0);
    p.mode = to_string(r.mode);
    p.kind = msg::to_string(r.kind);
    points.push_back(p);
  };
  Status hub_status;
  std::thread hub_thread([&] { hub_status = run_hub(hub, **server, service); });
  std::vector<std::thread> agents;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    agents.emplace_back([&, k] {
      AgentCore core(shards[k], objective, AgentOptions{"agent-" + std::to_string(k), k + 1});
      auto client = ClientSocket::connect(context, endpoint, transport);
      if (!client) return;
      AgentServiceOptions agent_service;
      agent_service.give_up_seconds = 600;
      // In one process nothing is lost on the way, so a silent hub is a busy one: two-level
      // dSAGA's setup at d = 2^18 (S1) keeps the hub's thread longer than the default 10 s, and
      // an agent that reconnects meanwhile joins again and upsets the setup.
      agent_service.hub_timeout_seconds = 300;
      const Status s = run_agent(core, **client, agent_service);
      if (!s) spdlog::error("agent {}: {}", k, s.message());
    });
  }
  for (auto& t : agents) t.join();
  hub_thread.join();
  if (!hub_status) throw std::runtime_error(hub_status.message());
  return points;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string problem = "B1", partition = "by-label", out = "bench-out", algorithms =
      "dsaga,dsaga-plain,dsaga-plain-r0.1,fedavg,scaffold";
  std::vector<double> eta_grid = {1.0, 0.3, 0.1, 0.03};
  int agents = 8;
  double steps_fraction = 1.0, server_step = 1.0, f_star = NAN, lambda = 0.0;
  std::uint64_t max_rounds = 100;
  long limit = 0;
  CLI::App app{"dsaga convergence benchmark: dSAGA against FedAvg, SCAFFOLD and distributed GD "
               "on Fashion-MNIST (ALGORITHM.md section 5), same agents, wire and metrics."};
  app.add_option("--problem", problem,
                 "All from Fashion-MNIST's training images (bench/convergence/problems.hpp says "
                 "exactly how): B1 binary logistic (classes {0,2,4,6} positive) on pixels/255 with "
                 "unit rows and a bias, d = 785; B2 10-class multinomial on the same features; "
                 "S1 binary as B1, sparse (CSR), d = 2^18 + 1: hashed 2x2 patch codes (5 levels "
                 "per pixel) as unit rows, plus a bias; D1 binary as B1, dense, d = 64: a fixed "
                 "+-1 random projection to 63 dims, rows scaled by heavy-tailed factors "
                 "(L_max/L_avg printed, > 10), not normalised, plus a bias; B1r and B2r: B1 and "
                 "B2 on raw pixels/255 (rows not normalised): badly conditioned")
      ->capture_default_str();
  app.add_option("--partition", partition,
                 "iid, by-label or dirichlet:ALPHA (per class, shard shares ~ Dirichlet(ALPHA), "
                 "seed 0); by-label shards are cut on the original 10 classes")
      ->capture_default_str();
  app.add_option("--lambda", lambda, "L2 regularisation (0 = 1/N)")->capture_default_str();
  app.add_option("--agents", agents, "K")->capture_default_str();
  app.add_option("--local-steps", steps_fraction, "T as a fraction of the local epoch n_k")
      ->capture_default_str();
  app.add_option("--algorithms", algorithms,
                 "Comma-separated: dsaga (the hub's default: two-level), fedavg, scaffold, gd; "
                 "dSAGA's variants as dsaga-plain (weighted mean, the paper's), dsaga-gX (plain "
                 "with server step X), dsaga-async (each update applied on arrival), dsaga-rX "
                 "(plain with table refresh fraction X), dsaga-mX (two-level with coarse rank X), "
                 "dsaga-whole (sparse agents' vectors at full width, not restricted to their "
                 "support), dsaga-twolevel (two-level, never switching), dsaga-newton (Newton-CG "
                 "from the start; dsaga-newton-pairs with the curvature-pairs preconditioner), combined as dsaga-async-g2-r0; dsaga-pX: local proximal term "
                 "mu = X. Rounds print as OUTER(MESSAGES) where they differ (Newton-CG)")
      ->capture_default_str();
  app.add_option("--eta-grid", eta_grid,
                 "Baselines: multiples of the default step 1/(3 L_max) (gd: 1/L_max) to try; "
                 "dSAGA runs its default")
      ->delimiter(',');
  app.add_option("--server-step", server_step, "eta_g")->capture_default_str();
  app.add_option("--max-rounds", max_rounds, "Round cap per run")->capture_default_str();
  app.add_option("--limit", limit, "Use the first rows of the data only (smoke runs)");
  app.add_option("--f-star", f_star, "F* if known (else computed with the reference solver)");
  app.add_option("--out", out, "Directory for the metrics files")->capture_default_str();
  std::string summary;
  app.add_option("--summary", summary,
                 "Also append each run's summary to this file, tab-separated: setting, algorithm, "
                 "eta, rounds and MB/agent to 1e-3, to 1e-6 (- if not reached), final (F-F*)/F*, "
                 "its round, peak, setup MB/agent, MB/agent per round, seconds");
  CLI11_PARSE(app, argc, argv);
  std::error_code made;
  std::filesystem::create_directories(out, made);
  if (made) {
    std::fprintf(stderr, "dsaga-bench-convergence: cannot create --out %s: %s\n", out.c_str(),
                 made.message().c_str());
    return 2;
  }
  // Warnings, and the hub's notes (the coarse space it chose, guard reverts) with DSAGA_BENCH_NOTES.
  spdlog::set_level(std::getenv("DSAGA_BENCH_NOTES") ? spdlog::level::info : spdlog::level::warn);

  double alpha = 0.0;
  auto kind = parse_partition(partition, &alpha);
  if (!kind) {
    std::fprintf(stderr, "--partition: %s\n", kind.error().c_str());
    return 2;
  }
  if (!(lambda >= 0.0 && std::isfinite(lambda))) {
    std::fprintf(stderr, "--lambda: %g is not a finite number >= 0\n", lambda);
    return 2;
  }
  auto loaded = bench::load_problem(problem, limit);
  if (!loaded) {
    std::fprintf(stderr, "--problem: %s\n", loaded.error().c_str());
    return loaded.error().find("is not a problem") != std::string::npos ? 2 : 1;
  }
  Objective objective = loaded->objective;
  Dataset* const full = &loaded->data;
  if (agents < 1 || agents > full->rows()) {
    std::fprintf(stderr, "--agents: %d agents for %lld rows\n", agents,
                 static_cast<long long>(full->rows()));
    return 2;
  }
  // The shards, cut on the raw classes, with the labels the loss takes mapped once on the whole
  // data set (as load_data does: a by-label shard without class 0 must not renumber its own).
  const auto parts = dsaga::partition(*full, agents, *kind, 0, alpha);
  objective.lambda = lambda > 0 ? lambda : 1.0 / static_cast<double>(full->rows());
  Status prepared = prepare_labels(*full, objective, loaded->positive);
  if (prepared) prepared = validate(objective, *full);
  if (prepared) advise_huge_pages(*full);
  std::vector<Dataset> shards;
  for (const auto& rows : parts) {
    if (!prepared) break;
    shards.push_back(select_rows(*full, rows));
    advise_huge_pages(shards.back());
  }
  if (!prepared) {
    std::fprintf(stderr, "%s\n", prepared.message().c_str());
    return 1;
  }
  // "-lam1e-04" in the file names when lambda is not the default 1/N.
  const std::string lambda_tag = [&] {
    if (lambda <= 0) return std::string();
    char b[32];
    std::snprintf(b, sizeof b, "-lam%g", lambda);
    return std::string(b);
  }();
  // F* depends only on the problem: computed once, kept in
  // OUT/<problem>[-lamX][-limitN]-fstar.txt.
  const std::string fstar_file = out + "/" + problem + lambda_tag +
                                 (limit ? "-limit" + std::to_string(limit) : "") + "-fstar.txt";
  if (!std::isfinite(f_star)) {
    std::ifstream cached(fstar_file);
    double value = NAN;
    if (cached >> value && std::isfinite(value) && value > 0) f_star = value;
  }
  if (!std::isfinite(f_star)) {
    const double t0 = monotonic_seconds();
    auto ref = solve_reference(*full, objective);
    if (!ref) {
      std::fprintf(stderr, "reference: %s\n", ref.error().c_str());
      return 1;
    }
    f_star = ref->value;
    std::ofstream(fstar_file) << std::setprecision(17) << f_star << "\n";
    std::printf("# F* by the reference solver (%s, %d iterations, |grad F| %.2e) in %.1f s\n",
                ref->method.c_str(), ref->iterations, ref->gradient_norm,
                monotonic_seconds() - t0);
  }
  const double lmax = max_smoothness(*full, objective);
  const double lavg = objective.beta() * row_norms_squared(*full).mean() + objective.lambda;
  std::string partition_tag = partition;  // no ':' in file names
  std::replace(partition_tag.begin(), partition_tag.end(), ':', '-');
  const std::string tag = problem + lambda_tag + "-" + partition_tag + "-k" +
                          std::to_string(agents) + "-T" +
                          [&] { std::ostringstream s; s << steps_fraction; return s.str(); }();
  std::printf("# %s: N = %lld, d = %lld, C = %d, lambda = %.3g, F* = %.17g, L_max = %.6g, "
              "L_max/L_avg = %.3g\n",
              tag.c_str(), static_cast<long long>(full->rows()),
              static_cast<long long>(full->cols()), objective.classes, objective.lambda, f_star,
              lmax, lmax / lavg);
  // Each shard: rows, positive share (logistic), and its column support (sparse data).
  std::string shard_list;
  for (const Dataset& data : shards) {
    char b[96];
    if (objective.loss == Loss::logistic)
      std::snprintf(b, sizeof b, " %lld(%.0f%%+", static_cast<long long>(data.rows()),
                    100.0 * (data.y.array() > 0).count() / data.rows());
    else
      std::snprintf(b, sizeof b, " %lld(", static_cast<long long>(data.rows()));
    shard_list += b;
    if (const auto* X = std::get_if<SparseMatrix<double>>(&data.X)) {
      std::vector<char> used(static_cast<std::size_t>(X->cols()), 0);
      std::int32_t top = -1;
      for (Index k = 0; k < X->nonZeros(); ++k) {
        used[static_cast<std::size_t>(X->innerIndexPtr()[k])] = 1;
        if (X->innerIndexPtr()[k] < X->cols() - 1) top = std::max(top, X->innerIndexPtr()[k]);
      }
      std::snprintf(b, sizeof b, " support %lld, top non-bias column %d",
                    static_cast<long long>(std::count(used.begin(), used.end(), 1)), top);
      shard_list += b;
    }
    shard_list += ")";
  }
  std::printf("# shards (rows, positive share, column support):%s\n", shard_list.c_str());
  std::printf("%-9s %-8s %-40s %-40s %-22s %-9s %-9s %s\n", "algorithm", "eta",
              "to 1e-3: rounds MB/agent evals/N s", "to 1e-6: rounds MB/agent evals/N s",
              "final (F-F*)/F* @ round", "peak", "setup MB", "MB/round (per agent)");
  std::stringstream list(algorithms);
  std::string name;
  while (std::getline(list, name, ',')) {
    // "dsaga[-async][-gX][-rX][-pX]": dSAGA with the asynchronous aggregation, server step X,
    // table refresh fraction X (the hub's default otherwise), local proximal term X.
    std::string base_name = name;
    // "...-f64" / "...-f32" / "...-q8" (any algorithm): the agents' deltas in that encoding
    // (compress.hpp); the hub's default otherwise.
    msg::Encoding compression = HubOptions{}.compression;
    for (msg::Encoding e : {msg::Encoding::f64, msg::Encoding::f32, msg::Encoding::q8}) {
      const std::string suffix = std::string("-") + compress::to_string(e);
      if (base_name.size() > suffix.size() &&
          base_name.compare(base_name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        compression = e;
        base_name.resize(base_name.size() - suffix.size());
      }
    }
    const std::string variant = base_name;
    Aggregation aggregation = Aggregation::automatic;
    int coarse_rank = 0;
    Preconditioner preconditioner = Preconditioner::automatic;
    bool restrict_to_support = true;
    double method_server_step = server_step;
    double refresh = 0.0;  // plain dSAGA unless -rX
    double prox = 0.0;
    if (variant.rfind("dsaga-", 0) == 0) {
      base_name = "dsaga";
      std::stringstream parts(variant.substr(6));
      std::string part;
      while (std::getline(parts, part, '-')) {
        char* end = nullptr;
        double value = NAN;
        if (part.size() > 1 &&
            (part[0] == 'g' || part[0] == 'r' || part[0] == 'p' || part[0] == 'm'))
          value = std::strtod(part.c_str() + 1, &end);
        if (part == "async") {
          aggregation = Aggregation::async;
        } else if (part == "whole") {
          restrict_to_support = false;
        } else if (part == "plain") {
          aggregation = Aggregation::mean;
        } else if (part == "twolevel") {
          aggregation = Aggregation::two_level;
        } else if (part == "newton") {
          aggregation = Aggregation::newton_cg;
        } else if (part == "pairs") {
          preconditioner = Preconditioner::pairs;
        } else if (end != nullptr && *end == '\0' && part[0] == 'm' && value >= 1) {
          coarse_rank = static_cast<int>(value);
        } else if (end != nullptr && *end == '\0' && part[0] == 'g' && value > 0) {
          method_server_step = value;
          if (aggregation == Aggregation::automatic) aggregation = Aggregation::mean;
        } else if (end != nullptr && *end == '\0' && part[0] == 'r' && value >= 0 && value <= 1) {
          refresh = value;
          if (aggregation == Aggregation::automatic) aggregation = Aggregation::mean;
        } else if (end != nullptr && *end == '\0' && part[0] == 'p' && value >= 0) {
          prox = value;
        } else {
          std::fprintf(stderr, "--algorithms: '%s' is not dsaga[-async][-plain][-twolevel][-newton][-pairs][-whole][-gX][-rX][-pX][-mX][-f64|-f32|-q8]\n",
                       name.c_str());
          return 2;
        }
      }
    }
    auto algorithm = parse_algorithm(base_name);
    if (!algorithm) {
      std::fprintf(stderr, "--algorithms: %s\n", algorithm.error().c_str());
      return 2;
    }
    const double base = *algorithm == msg::Algorithm::gd ? 1.0 / lmax : 1.0 / (3.0 * lmax);
    const std::vector<double> grid =
        *algorithm == msg::Algorithm::dsaga ? std::vector<double>{1.0} : eta_grid;
    for (double factor : grid) {
      HubOptions options;
      options.algorithm = *algorithm;
      options.objective = objective;
      options.expected_agents = agents;
      options.eta = *algorithm == msg::Algorithm::dsaga ? 0.0 : base * factor;  // dSAGA: the hub's default
      options.server_step = method_server_step;
      options.aggregation = aggregation;
      options.coarse_rank = coarse_rank;
      options.preconditioner = preconditioner;
      options.compression = compression;
      options.restrict_to_support = restrict_to_support;
      options.table_refresh = refresh;
      options.prox = prox;
      options.local_steps = 0;
      if (steps_fraction != 1.0)
        options.local_steps =
            std::max<Index>(1, static_cast<Index>(steps_fraction * full->rows() / agents));
      options.max_rounds = max_rounds;
      options.f_star = f_star;
      options.target = 1e-6;
      const auto points = run_once(shards, options, objective);
      char file[512];
      std::snprintf(file, sizeof file, "%s/%s-%s-eta%g.csv", out.c_str(), tag.c_str(),
                    name.c_str(), factor);
      std::ofstream csv(file);
      csv << "round,objective,suboptimality,bytes_per_agent,gradient_evaluations,seconds,"
             "step_scale,reverted,outer,mode,kind\n";
      Threshold t3, t6;
      double peak = -INFINITY;  // the largest suboptimality measured (NaN rounds skipped)
      for (const Point& p : points) {
        if (!std::isnan(p.suboptimality)) peak = std::max(peak, p.suboptimality);
        char line[320];
        std::snprintf(line, sizeof line, "%llu,%.17g,%.17g,%.0f,%.0f,%.4f,%.6g,%d,%llu,%s,%s\n",
                      static_cast<unsigned long long>(p.round), p.objective, p.suboptimality,
                      p.bytes_per_agent, p.evaluations, p.seconds, p.step_scale,
                      p.reverted ? 1 : 0, static_cast<unsigned long long>(p.outer),
                      p.mode.c_str(), p.kind.c_str());
        csv << line;
        if (!t3.reached && p.suboptimality <= 1e-3) t3 = {true, p};
        if (!t6.reached && p.suboptimality <= 1e-6) t6 = {true, p};
      }
      const auto show = [&](const Threshold& t) {
        char s[80];
        if (!t.reached) return std::string("-");
        // Rounds: outer rounds, and the message round trips when there were more (Newton-CG).
        char rounds[32];
        if (t.at.outer == t.at.round)
          std::snprintf(rounds, sizeof rounds, "%4llu", static_cast<unsigned long long>(t.at.round));
        else
          std::snprintf(rounds, sizeof rounds, "%llu(%llu)", static_cast<unsigned long long>(t.at.outer),
                        static_cast<unsigned long long>(t.at.round));
        std::snprintf(s, sizeof s, "%s %7.2f %7.1f %7.1f", rounds, t.at.bytes_per_agent / 1e6,
                      t.at.evaluations / full->rows(), t.at.seconds);
        return std::string(s);
      };
      const Point& last = points.back();
      // One round's bytes: the mean over rounds 2..last; the setup: round 1's total less that.
      double per_round = NAN, setup = NAN;
      const auto first = std::find_if(points.begin(), points.end(),
                                      [](const Point& p) { return p.round == 1; });
      if (first != points.end() && last.round > 1) {
        per_round = (last.bytes_per_agent - first->bytes_per_agent) /
                    static_cast<double>(last.round - 1);
        setup = first->bytes_per_agent - per_round;
      }
      // The final figure: the last round that measured F (Newton-CG's product rounds do not).
      const Point* measured = &last;
      for (auto it = points.rbegin(); it != points.rend(); ++it)
        if (!std::isnan(it->suboptimality)) {
          measured = &*it;
          break;
        }
      char final_text[48];
      std::snprintf(final_text, sizeof final_text, "%.3e @ %llu", measured->suboptimality,
                    static_cast<unsigned long long>(measured->round));
      std::printf("%-9s %-8.3g %-40s %-40s %-22s %-9.3g %-9.3f %.3f\n", name.c_str(), factor,
                  show(t3).c_str(), show(t6).c_str(), final_text, peak, setup / 1e6,
                  per_round / 1e6);
      std::fflush(stdout);
      if (!summary.empty()) {
        std::ofstream tsv(summary, std::ios::app);
        const auto reached = [](const Threshold& t, bool rounds) {
          char v[32];
          if (!t.reached) return std::string("-");
          if (rounds && t.at.outer != t.at.round)
            std::snprintf(v, sizeof v, "%llu(%llu)", static_cast<unsigned long long>(t.at.outer),
                          static_cast<unsigned long long>(t.at.round));
          else if (rounds)
            std::snprintf(v, sizeof v, "%llu", static_cast<unsigned long long>(t.at.round));
          else std::snprintf(v, sizeof v, "%.3f", t.at.bytes_per_agent / 1e6);
          return std::string(v);
        };
        char row[512];
        std::snprintf(row, sizeof row, "%s\t%s\t%g\t%s\t%s\t%s\t%s\t%.3e\t%llu\t%.3g\t%.3f\t%.3f\t%.1f\n",
                      tag.c_str(), name.c_str(), factor, reached(t3, true).c_str(),
                      reached(t3, false).c_str(), reached(t6, true).c_str(),
                      reached(t6, false).c_str(), measured->suboptimality,
                      static_cast<unsigned long long>(measured->round), peak, setup / 1e6,
                      per_round / 1e6, last.seconds);
        tsv << row;
      }
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "convergence: %s\n", e.what());
  return 1;
}
