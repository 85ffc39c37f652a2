// Hub checkpoint files on disk (checkpoint.hpp): naming, atomic writes, keeping the newest,
// restoring the newest that verifies. What a file holds is HubCore::snapshot (hub_snapshot.cpp).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "dsaga/checkpoint.hpp"
#include "dsaga/files.hpp"

namespace dsaga {

namespace {

// hub-00000000000000000042.ckpt: fixed width, so names sort like rounds.
std::string file_name(std::uint64_t round) {
  char name[64];
  std::snprintf(name, sizeof name, "hub-%020llu.ckpt", static_cast<unsigned long long>(round));
  return name;
}

bool is_checkpoint_name(const std::string& name) {
  return name.size() == 29 && name.rfind("hub-", 0) == 0 &&
         name.compare(24, 5, ".ckpt") == 0 &&
         std::all_of(name.begin() + 4, name.begin() + 24, [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    // readdir() returns null at the end and on an error; only errno tells them apart. A listing
    // cut short must not read as "no checkpoint" (a hub would start afresh): an error is logged
    // and the entries read so far are kept.
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      if (is_checkpoint_name(e->d_name)) names.emplace_back(e->d_name);
      errno = 0;
    }
    if (errno != 0)
      spdlog::error("{}: reading the checkpoint directory failed: {}", dir, std::strerror(errno));
    ::closedir(d);
  }
  std::sort(names.rbegin(), names.rend());
  for (auto& n : names) n = dir + "/" + n;
  return names;
}

Status prepare_checkpoint_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST)
    return Status::error(dir + ": cannot create the checkpoint directory: " + std::strerror(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::error(dir + ": the checkpoint directory is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return Status::error(dir + ": the checkpoint directory is not writable: " + std::strerror(errno));
  return Status::ok();
}

Status save_checkpoint(const std::string& dir, std::uint64_t round, const std::string& bytes,
                       int keep) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST)
    return Status::error(dir + ": cannot create the checkpoint directory: " + std::strerror(errno));
  if (Status s = write_file_atomic(dir + "/" + file_name(round), bytes); !s) return s;
  const auto all = list_checkpoints(dir);
  for (std::size_t i = static_cast<std::size_t>(std::max(1, keep)); i < all.size(); ++i)
    std::remove(all[i].c_str());
  return Status::ok();
}

}  // namespace dsaga
