// The daemons' side of systemd's notification protocol (cli/service_notify.hpp) against a
// datagram socket standing in for systemd's NOTIFY_SOCKET.
#include "service_notify.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace dsaga {
namespace {

TEST(ServiceNotify, MessagesAreAssignmentLines) {
  EXPECT_EQ(cli::notify_message(true, ""), "READY=1");
  EXPECT_EQ(cli::notify_message(true, "round 3"), "READY=1\nSTATUS=round 3");
  EXPECT_EQ(cli::notify_message(false, "round 3"), "STATUS=round 3");
  // A status cannot add an assignment of its own.
  EXPECT_EQ(cli::notify_message(false, "x\nREADY=1\r"), "STATUS=x READY=1 ");
}

// A NOTIFY_SOCKET of our own for the duration of a test.
class FakeServiceManager {
 public:
  FakeServiceManager() {
    path_ = std::string(::testing::TempDir()) + "dsaga-notify-" + std::to_string(getpid());
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~FakeServiceManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool ok() const { return ok_; }
  // The next datagram, or "" when none is waiting.
  std::string next() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

TEST(ServiceNotify, ReadyOnceStatusOnChangeWatchdogAtHalfTheInterval) {
  FakeServiceManager manager;
  ASSERT_TRUE(manager.ok());
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  cli::ServiceNotifier notifier;
  if (std::string(platform::service_manager_support()) == "none") {
    // Built without libsystemd: every call is a no-op, whatever the environment says.
    EXPECT_EQ(notifier.watchdog_seconds(), 0.0);
    notifier.ready("listening");
    notifier.watchdog(10.0);
    EXPECT_EQ(manager.next(), "");
    GTEST_SKIP() << "built without libsystemd (DSAGA_WITH_SYSTEMD off): no-ops checked";
  }
  EXPECT_EQ(notifier.watchdog_seconds(), 1.0);
  notifier.ready("listening\non tcp://127.0.0.1:5555");
  EXPECT_EQ(manager.next(), "READY=1\nSTATUS=listening on tcp://127.0.0.1:5555");
  notifier.status_line("listening\non tcp://127.0.0.1:5555");  // unchanged: not sent
  EXPECT_EQ(manager.next(), "");
  notifier.status_line("round 1");
  EXPECT_EQ(manager.next(), "STATUS=round 1");
  notifier.ready("round 1");  // READY=1 only once
  EXPECT_EQ(manager.next(), "");
  notifier.watchdog(10.0);
  EXPECT_EQ(manager.next(), "WATCHDOG=1");
  notifier.watchdog(10.4);
  EXPECT_EQ(manager.next(), "");
  notifier.watchdog(10.5);
  EXPECT_EQ(manager.next(), "WATCHDOG=1");
  notifier.stopping("done");
  EXPECT_EQ(manager.next(), "STOPPING=1\nSTATUS=done");
}

TEST(ServiceNotify, WatchdogOfAnotherProcessIsNotOurs) {
  FakeServiceManager manager;
  ASSERT_TRUE(manager.ok());
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  cli::ServiceNotifier notifier;
  EXPECT_EQ(notifier.watchdog_seconds(), 0.0);
  notifier.watchdog(10.0);
  EXPECT_EQ(manager.next(), "");
}

}  // namespace
}  // namespace dsaga
