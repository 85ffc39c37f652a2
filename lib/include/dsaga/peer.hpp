// The identity of a connected peer: assigned by the transport (transport.hpp), used by the state
// machines (hub.hpp) to address what they send.
#pragma once

#include <string>

namespace dsaga {

// Opaque identity of a connected peer: the hub ROUTER's routing id (binary bytes). A DEALER that
// reconnects gets a new one.
using PeerId = std::string;

}  // namespace dsaga
