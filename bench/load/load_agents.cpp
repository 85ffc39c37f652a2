// Many lightweight agents in one process, for the hub load benchmark (bench/load.sh): each
// agent is a thread with its own AgentCore and its own ZeroMQ DEALER socket on a real tcp
// connection to a dsaga-hub process, exactly as a device would run. The data set is loaded
// once and split into `--shards` shards; this process runs agents --first .. --first+--agents-1.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "dsaga/data_source.hpp"
#include "dsaga/service.hpp"

int main(int argc, char** argv) try {
  using namespace dsaga;
  std::string hub;
  int agents = 100, first = 0, shards = 0;
  long limit = 0;
  CLI::App app{"Runs many dsaga agents (threads) in one process against one hub (load test)."};
  app.add_option("--hub", hub, "Hub endpoint")->required();
  app.add_option("--agents", agents, "Agents in this process")->capture_default_str();
  app.add_option("--first", first, "Shard of the first agent")->capture_default_str();
  app.add_option("--shards", shards, "Shards in all processes (default: --agents)");
  app.add_option("--limit", limit, "Rows of Fashion-MNIST test to use (0 = all 10000)");
  CLI11_PARSE(app, argc, argv);
  if (shards == 0) shards = agents;
  spdlog::set_level(spdlog::level::warn);

  DataSpec spec;
  spec.format = "fashion-mnist";
  spec.split = "test";
  spec.limit = limit;
  spec.scale = 1.0 / 255;
  spec.normalize_rows = true;
  spec.bias = true;
  spec.positive = {0, 2, 4, 6};
  Objective objective;
  auto all = load_data(spec, objective);
  if (!all) {
    std::fprintf(stderr, "%s\n", all.error().c_str());
    return 1;
  }
  const auto parts = partition(*all, shards, PartitionKind::iid, 0);
  std::vector<Dataset> data;
  data.reserve(static_cast<std::size_t>(agents));
  for (int k = 0; k < agents; ++k) data.push_back(select_rows(*all, parts.at(first + k)));

  TransportContext context;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < agents; ++k) {
    threads.emplace_back([&, k] {
      const std::string id = "load-" + std::to_string(first + k);
      AgentCore core(data[static_cast<std::size_t>(k)], objective,
                     AgentOptions{id, static_cast<std::uint64_t>(first + k + 1)});
      auto socket = ClientSocket::connect(context, hub, TransportOptions{});
      if (!socket) {
        ++failed;
        return;
      }
      AgentServiceOptions options;
      options.heartbeat_seconds = 5;
      options.hub_timeout_seconds = 60;
      options.give_up_seconds = 300;
      if (!run_agent(core, **socket, options)) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  std::printf("%d agents done, %d failed\n", agents, failed.load());
  return failed == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "load_agents: %s\n", e.what());
  return 1;
}
