// The hub's metrics endpoint: GET /metrics answered from the server's own threads with the text
// a callback returns (format_prometheus of a MetricsBoard snapshot, dsaga/metrics.hpp). The
// callback must be thread-safe: it runs on the server's threads, never on the service loop's.
//
// Implemented over cpp-httplib in platforms/http/metrics_http.cpp (DSAGA_WITH_HTTP); without
// it, platforms/none/metrics_http.cpp, whose start() fails with "built without HTTP support".
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "dsaga/metrics.hpp"
#include "dsaga/status.hpp"

namespace dsaga::platform {

// The content type of the Prometheus text exposition format.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsHttpServer {
 public:
  using Body = std::function<std::string()>;
  // Binds `address` (port 0: any free port) and serves until destroyed. The error names the
  // address and the reason (in use, not an address of this machine, no HTTP support).
  static Result<std::unique_ptr<MetricsHttpServer>> start(const ListenAddress& address, Body body);
  // Stops serving and joins the server's threads.
  virtual ~MetricsHttpServer() = default;
  // The bound port (the chosen one for port 0).
  virtual int port() const = 0;
};

// False when built without an HTTP server (DSAGA_WITH_HTTP off).
bool has_http_support();

}  // namespace dsaga::platform
