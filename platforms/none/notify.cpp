// cli/service_notify.hpp where there is no service manager to tell (DSAGA_WITH_SYSTEMD off:
// images without systemd, the static agent): every call is a no-op.
#include "service_notify.hpp"

namespace dsaga::platform {

bool notify(const std::string&) { return false; }
std::uint64_t watchdog_usec() { return 0; }
const char* service_manager_support() { return "none"; }

}  // namespace dsaga::platform
