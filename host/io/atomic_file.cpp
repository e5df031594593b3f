// gmmdiff: atomic file writes.
#include "io/atomic_file.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {
// Fixed storage: the signal handler may only read plain memory and call unlink().
constexpr std::size_t kMaxPath = 4096;
char g_temp_paths[kMaxTemps][kMaxPath];
std::atomic<int> g_temp_used[kMaxTemps];

extern "C" void cleanup_and_reraise(int sig) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load(std::memory_order_acquire) == 1) ::unlink(g_temp_paths[i]);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}
}  // namespace

void register_temp(const std::string& tmp) {
  if (tmp.size() >= kMaxPath) return;
  for (int i = 0; i < kMaxTemps; ++i) {
    int expected = 0;
    if (g_temp_used[i].compare_exchange_strong(expected, 2)) {  // 2: being written
      std::memcpy(g_temp_paths[i], tmp.c_str(), tmp.size() + 1);
      g_temp_used[i].store(1, std::memory_order_release);
      return;
    }
  }
}

void unregister_temp(const std::string& tmp) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load(std::memory_order_acquire) == 1 && tmp == g_temp_paths[i]) {
      g_temp_used[i].store(0, std::memory_order_release);
      return;
    }
}

void install_cleanup_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = cleanup_and_reraise;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

std::string temp_name_for(const std::string& path) {
  return path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
}

void check_output_path(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  const std::string who = what.empty() ? path : what + " " + path;
  GMMDIFF_EXPECTS(!path.empty(), what.empty() ? "output" : what, ": empty file name");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st)) {
    GMMDIFF_EXPECTS(!fs::is_directory(st), who, ": is a directory (give a file name inside it)");
    GMMDIFF_EXPECTS(fs::is_regular_file(st), who,
                    ": not a regular file (gmmdiff writes a new file and renames it into place)");
  }
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    const fs::file_status ps = fs::status(parent, ec);
    GMMDIFF_EXPECTS(fs::exists(ps), who, ": the directory ", parent.string(), " does not exist");
    GMMDIFF_EXPECTS(fs::is_directory(ps), who, ": ", parent.string(), " is not a directory");
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  check_output_path(path);
  const std::string tmp = temp_name_for(path);
  register_temp(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) unregister_temp(tmp);
  GMMDIFF_EXPECTS(f, path, ": cannot write (", std::strerror(errno), ")");
  const bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size() &&
                  std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    unregister_temp(tmp);
    throw Error(path + ": write failed (" + std::strerror(err) + ")");
  }
  unregister_temp(tmp);
}

}  // namespace gmmdiff
