// cli/metrics_http.hpp over cpp-httplib (Debian: libcpp-httplib-dev; Yocto: meta-oe's
// cpp-httplib). The server runs its accept loop on one thread of its own and answers on a pool
// of two: a scrape is a copy of a small struct and a few kilobytes of text.
#include "metrics_http.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

namespace dsaga::platform {

namespace {

class HttplibServer final : public MetricsHttpServer {
 public:
  explicit HttplibServer(Body body) : body_(std::move(body)) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(2); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second hub
    // share the port and answer half the scrapes. Reuse of a port in TIME_WAIT is still fine.
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // A scraper that stalls must not hold a handler thread for long.
    server_.set_read_timeout(5, 0);
    server_.set_write_timeout(5, 0);
    server_.set_keep_alive_max_count(100);
    server_.set_payload_max_length(64 * 1024);
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
      response.set_content(body_(), kPrometheusContentType);
    });
    server_.Get("/", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("dsaga hub: metrics at /metrics\n", "text/plain; charset=utf-8");
    });
  }

  // stop() acts only on a running accept loop, and may be called once: so wait until the loop
  // runs (or has failed) before stopping it, else a stop that came too early would leave the
  // thread listening and the join hanging.
  ~HttplibServer() override {
    if (!thread_.joinable()) return;  // never started (the bind failed)
    bool stopped = false;
    while (!done_.load()) {
      if (!stopped && server_.is_running()) {
        server_.stop();
        stopped = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (thread_.joinable()) thread_.join();
  }

  Status bind(const ListenAddress& address) {
    errno = 0;
    if (address.port == 0) {
      port_ = server_.bind_to_any_port(address.host);
      if (port_ > 0) return Status::ok();
    } else if (server_.bind_to_port(address.host, address.port)) {
      port_ = address.port;
      return Status::ok();
    }
    const std::string why = errno != 0 ? std::strerror(errno) : "cannot bind";
    return Status::error("metrics endpoint " + address.host + ":" + std::to_string(address.port) +
                         ": " + why);
  }

  void run() {
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      done_ = true;
    });
  }

  int port() const override { return port_; }

 private:
  Body body_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  int port_ = 0;
};

}  // namespace

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::start(const ListenAddress& address,
                                                                    Body body) {
  // A scraper that hangs up in the middle of an answer must not kill the hub with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  auto server = std::make_unique<HttplibServer>(std::move(body));
  if (const Status s = server->bind(address); !s) return s;
  server->run();
  return std::unique_ptr<MetricsHttpServer>(std::move(server));
}

bool has_http_support() { return true; }

}  // namespace dsaga::platform
