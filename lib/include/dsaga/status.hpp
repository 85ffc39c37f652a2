// Errors as values. Expected failures (a bad file, a bad message, a bad configuration) come back
// as a Status or Result<T> whose message a person can act on: it names the file and line, the
// message field or the configuration key at fault, and what is wrong. Exceptions are kept for
// programming errors and are caught at the boundary of each `main`.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace dsaga {

class Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message), false); }

  bool is_ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  // Empty when ok.
  const std::string& message() const { return message_; }

 private:
  Status(std::string message, bool ok) : message_(std::move(message)), ok_(ok) {}
  std::string message_;
  bool ok_ = true;
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
