// Telling the service manager how a daemon is doing, in systemd's notification protocol
// (sd_notify(3)): READY=1 once it serves, STATUS= lines for `systemctl status`, STOPPING=1, and
// WATCHDOG=1 pings while the service loop runs when the unit sets WatchdogSec=.
//
// The platform part is two functions (below), implemented once per platform under platforms/:
// platforms/systemd/notify.cpp over libsystemd (DSAGA_WITH_SYSTEMD), platforms/none/notify.cpp
// as no-ops (builds and images without systemd). Outside a Type=notify unit (no NOTIFY_SOCKET)
// the systemd one does nothing either, so a daemon calls these unconditionally.
#pragma once

#include <cstdint>
#include <string>

namespace dsaga::platform {

// Sends one notification (newline-separated KEY=VALUE assignments); false when not sent (no
// service manager, or built without one). Never blocks for long; never throws.
bool notify(const std::string& message);
// The watchdog interval the service manager asked for, in microseconds; 0 = none.
std::uint64_t watchdog_usec();
// "systemd" or "none": what this build was made with.
const char* service_manager_support();

}  // namespace dsaga::platform

namespace dsaga::cli {

// "READY=1\nSTATUS=..." (either part optional). A STATUS value is one line: newlines become
// spaces, so a status can never smuggle in another assignment.
inline std::string notify_message(bool ready, const std::string& status) {
  std::string message;
  if (ready) message += "READY=1";
  if (!status.empty()) {
    if (!message.empty()) message += '\n';
    message += "STATUS=";
    for (char c : status) message += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return message;
}

// A daemon's side of the protocol: one READY=1, STATUS= only when it changes, watchdog pings
// at half the interval asked for. Call from the service loop's thread only.
class ServiceNotifier {
 public:
  ServiceNotifier() : watchdog_seconds_(static_cast<double>(platform::watchdog_usec()) * 1e-6) {}

  void ready(const std::string& status) {
    if (ready_) return status_line(status);
    ready_ = true;
    status_ = status;
    platform::notify(notify_message(true, status));
  }
  void status_line(const std::string& status) {
    if (status == status_) return;
    status_ = status;
    platform::notify(notify_message(false, status));
  }
  void stopping(const std::string& status) {
    status_ = status;
    platform::notify("STOPPING=1\n" + notify_message(false, status));
  }
  // `now` in seconds on a monotonic clock. A ping at most every half interval.
  void watchdog(double now) {
    if (!(watchdog_seconds_ > 0) || now - last_ping_ < watchdog_seconds_ / 2) return;
    last_ping_ = now;
    platform::notify("WATCHDOG=1");
  }
  bool is_ready() const { return ready_; }
  double watchdog_seconds() const { return watchdog_seconds_; }

 private:
  double watchdog_seconds_;
  double last_ping_ = -1e300;
  bool ready_ = false;
  std::string status_;
};

}  // namespace dsaga::cli
