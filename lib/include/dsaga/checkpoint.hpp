// Hub checkpoint files: DIR/hub-<round>.ckpt holding HubCore::snapshot(), written atomically
// (temporary file, fsync, rename, directory fsync), the newest `keep` kept. On start the hub
// restores the newest one that verifies, falling back to older ones with a logged reason; one of
// another format or problem (StatusCode::incompatible) stops the start instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dsaga/status.hpp"

namespace dsaga {

// Creates `dir` if needed and checks that it is a writable directory, so a hub started with a
// bad --checkpoint-dir fails at once instead of acknowledging updates it cannot save.
Status prepare_checkpoint_dir(const std::string& dir);
Status save_checkpoint(const std::string& dir, std::uint64_t round, const std::string& bytes,
                       int keep = 3);
// Checkpoint paths in `dir`, newest (highest round) first; empty if none or no such directory.
std::vector<std::string> list_checkpoints(const std::string& dir);

}  // namespace dsaga
