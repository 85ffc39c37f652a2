// cli/service_notify.hpp over libsystemd: sd_notify(3) and sd_watchdog_enabled(3). Without
// NOTIFY_SOCKET (not started by systemd as Type=notify) sd_notify sends nothing and returns 0.
#include <systemd/sd-daemon.h>

#include "service_notify.hpp"

namespace dsaga::platform {

bool notify(const std::string& message) { return sd_notify(0, message.c_str()) > 0; }

std::uint64_t watchdog_usec() {
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

const char* service_manager_support() { return "systemd"; }

}  // namespace dsaga::platform
