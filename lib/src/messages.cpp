#include "dsaga/messages.hpp"

namespace dsaga::msg {

namespace {
template <class>
[[maybe_unused]] inline constexpr bool kAlwaysFalse = false;
}  // namespace

const char* to_string(RoundKind kind) {
  switch (kind) {
    case RoundKind::run: return "run";
    case RoundKind::gradient: return "gradient";
    case RoundKind::product: return "product";
  }
  return "unknown";
}

const char* name_of(const Message& message) {
  return std::visit(
      [](const auto& m) -> const char* {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Join>) return "Join";
        else if constexpr (std::is_same_v<T, Config>) return "Config";
        else if constexpr (std::is_same_v<T, InitUpload>) return "InitUpload";
        else if constexpr (std::is_same_v<T, RoundStart>) return "RoundStart";
        else if constexpr (std::is_same_v<T, Update>) return "Update";
        else if constexpr (std::is_same_v<T, Ack>) return "Ack";
        else if constexpr (std::is_same_v<T, Leave>) return "Leave";
        else if constexpr (std::is_same_v<T, Error>) return "Error";
        else if constexpr (std::is_same_v<T, Heartbeat>) return "Heartbeat";
        else static_assert(kAlwaysFalse<T>, "name_of: unhandled message type");
      },
      message);
}

}  // namespace dsaga::msg
