// Errors as values. Expected failures (a bad file, a bad message, a bad configuration) come back
// as a Status or Result<T> whose message a person can act on: it names the file and line, the
// message field or the configuration key at fault, and what is wrong. Exceptions are kept for
// programming errors and are caught at the boundary of each `main`.
#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace dsaga {

// The kind of a failure, for the few callers that act on it; every other caller reports the
// message, which says what is wrong.
enum class StatusCode : std::uint8_t {
  ok = 0,
  error,         // a failure: the message says which
  incompatible,  // well formed, but for another version or problem (a hub checkpoint of another
                 // format, or written with other options): not to be passed over silently
};

class Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  static Status error(std::string message, StatusCode code = StatusCode::error) {
    return Status(std::move(message), code == StatusCode::ok ? StatusCode::error : code);
  }

  bool is_ok() const { return code_ == StatusCode::ok; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  // Empty when ok.
  const std::string& message() const { return message_; }

 private:
  Status(std::string message, StatusCode code) : message_(std::move(message)), code_(code) {}
  std::string message_;
  StatusCode code_ = StatusCode::ok;
};

// Either a value or an error message.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : error_(std::move(status)) {  // NOLINT: implicit by design
    assert(!error_.is_ok() && "Result built from an ok Status carries no value");
    if (error_.is_ok()) error_ = Status::error("internal error: Result without value");
  }
  static Result failure(std::string message) { return Result(Status::error(std::move(message))); }

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return error_; }
  const std::string& error() const { return error_.message(); }

  T& value() & { assert(value_); return *value_; }
  const T& value() const& { assert(value_); return *value_; }
  T&& value() && { assert(value_); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status error_;
};

}  // namespace dsaga
