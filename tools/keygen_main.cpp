// dsaga-keygen: makes a CurveZMQ key pair for the hub or an agent, in the files the daemons
// read (formats in lib/include/dsaga/keys.hpp):
//   NAME.key  public and secret key, mode 0600: stays on the machine that owns it
//   NAME.pub  public key only: give it to the other side (the hub's to every agent)
// and prints the allowlist line ("NAME PUBLIC_KEY") to add to the hub's allowlist.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "dsaga/keys.hpp"
#include "dsaga/version.hpp"

int main(int argc, char** argv) try {
  using namespace dsaga;
  std::string name, dir = ".", id;
  bool force = false, quiet = false;
  CLI::App app{"dsaga-keygen " DSAGA_VERSION
               ": generates a CurveZMQ key pair: writes NAME.key "
               "(secret, mode 0600) and NAME.pub (public), and prints the allowlist line for "
               "the hub."};
  app.set_version_flag("--version", DSAGA_VERSION);
  app.add_option("name", name, "Base name of the files, e.g. hub or agent-17")->required();
  app.add_option("-d,--dir", dir, "Directory to write the files into")->capture_default_str();
  app.add_option("--id", id, "Agent id for the allowlist line (default: NAME)");
  app.add_flag("-f,--force", force, "Overwrite existing NAME.key / NAME.pub");
  app.add_flag("-q,--quiet", quiet, "Print only the allowlist line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (id.empty()) id = name;
  // The allowlist is whitespace-separated: an id with spaces could never be listed.
  for (char c : id) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      std::fprintf(stderr, "dsaga-keygen: id '%s': only printable ASCII without spaces\n",
                   id.c_str());
      return 2;
    }
  }
  if (id.empty() || id.size() > 255 || id[0] == '#') {
    std::fprintf(stderr, "dsaga-keygen: id '%s': 1..255 characters, not starting with '#'\n",
                 id.c_str());
    return 2;
  }
  const std::string base = dir + "/" + name;
  // Checked up front so that a refusal leaves nothing half-written (a new .key next to an old
  // .pub). write_text_file's O_EXCL still settles any race.
  if (!force) {
    for (const char* ext : {".key", ".pub"}) {
      if (::access((base + ext).c_str(), F_OK) == 0) {
        std::fprintf(stderr, "dsaga-keygen: %s%s exists (use --force to overwrite)\n", base.c_str(),
                     ext);
        return 1;
      }
    }
  }
  const Result<CurveKeyPair> keys = generate_curve_keypair();
  if (!keys) {
    std::fprintf(stderr, "dsaga-keygen: %s\n", keys.error().c_str());
    return 1;
  }
  // The secret first: if it cannot be written, no .pub is left behind that matches nothing.
  const Status secret = write_text_file(
      base + ".key",
      format_key_file(*keys, "dsaga CURVE key pair of " + id + ": keep secret", true), 0600, force);
  if (!secret) {
    std::fprintf(stderr, "dsaga-keygen: %s\n", secret.message().c_str());
    return 1;
  }
  const Status pub = write_text_file(
      base + ".pub", format_key_file(*keys, "dsaga CURVE public key of " + id, false), 0644, force);
  if (!pub) {
    std::fprintf(stderr, "dsaga-keygen: %s\n", pub.message().c_str());
    return 1;
  }
  if (!quiet) {
    std::fprintf(stderr, "dsaga-keygen: wrote %s.key (secret, mode 0600) and %s.pub\n",
                 base.c_str(), base.c_str());
    std::fprintf(stderr, "allowlist line (for an agent; add it to the hub's allowlist file):\n");
  }
  std::printf("%s %s\n", id.c_str(), keys->public_key.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dsaga-keygen: internal error: %s\n", e.what());
  return 70;
}
