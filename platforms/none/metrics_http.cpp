// cli/metrics_http.hpp in a build without an HTTP server (DSAGA_WITH_HTTP off).
#include "metrics_http.hpp"

namespace dsaga::platform {

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::start(const ListenAddress&, Body) {
  return Result<std::unique_ptr<MetricsHttpServer>>::failure(
      "built without HTTP support (rebuild with cpp-httplib and -DDSAGA_WITH_HTTP=ON)");
}

bool has_http_support() { return false; }

}  // namespace dsaga::platform
