// gmmdiff: atomic file writes, their temporaries, and the signal handler that removes them.
#include "io/atomic_file.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "gmmdiff/error.hpp"
#include "io/text.hpp"

namespace gmmdiff {

namespace {
// Fixed storage: the signal handler may only read plain memory and call unlink().
constexpr std::size_t kMaxPath = 4096;
char g_temp_paths[kMaxTemps][kMaxPath];
std::atomic<int> g_temp_used[kMaxTemps];

constexpr const char* kTempPrefix = ".gmmdiff-tmp-";

extern "C" void cleanup_and_reraise(int sig) {
  const int saved = errno;
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load(std::memory_order_acquire) == 1) ::unlink(g_temp_paths[i]);
  ::signal(sig, SIG_DFL);
  ::raise(sig);  // delivered when the handler returns (a crash signal: when the instruction faults again)
  errno = saved;
}

/// 8 hex digits of a hash of the host name: temporaries of another host sharing the directory
/// (NFS) are never taken for stale ones of this host.
const std::string& host_tag() {
  static const std::string tag = [] {
    char h[256] = {0};
    if (::gethostname(h, sizeof h - 1) != 0) std::strcpy(h, "unknown");
    return text::hex16(text::fnv1a(std::string(h))).substr(8);
  }();
  return tag;
}

bool process_exists(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

bool registered(const std::string& path) {
  for (int i = 0; i < kMaxTemps; ++i)
    if (g_temp_used[i].load(std::memory_order_acquire) == 1 && path == g_temp_paths[i]) return true;
  return false;
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
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
  // Every signal whose default action ends the process (SIGKILL and SIGSTOP cannot be caught).
  static const int kSignals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,   SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2,
                                 SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGPOLL, SIGPWR,  SIGSYS,  SIGTRAP,
                                 SIGSEGV, SIGBUS,  SIGFPE,  SIGILL,    SIGABRT};
  for (int sig : kSignals) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0) continue;
    // Handled by someone else (a sanitizer's handler): leave it so. Ignored at start: leave it so
    // (nohup's SIGHUP, trap '' PIPE), except SIGINT and SIGQUIT, which a shell ignores in every
    // background job it starts, not at the user's request: kill -INT stops a run started with &.
    if (old.sa_flags & SA_SIGINFO) continue;
    if (old.sa_handler == SIG_IGN && sig != SIGINT && sig != SIGQUIT) continue;
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = cleanup_and_reraise;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

bool parse_temp_name(const std::string& name, std::string* host, long* pid) {
  // .gmmdiff-tmp-<8 hex>-<pid>-<n>
  const std::size_t plen = std::strlen(kTempPrefix);
  if (name.compare(0, plen, kTempPrefix) != 0 || name.size() < plen + 8 + 4) return false;
  const std::string h = name.substr(plen, 8);
  if (h.find_first_not_of("0123456789abcdef") != std::string::npos || name[plen + 8] != '-') return false;
  const std::string rest = name.substr(plen + 9);
  const auto dash = rest.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == rest.size()) return false;
  const std::string p = rest.substr(0, dash), n = rest.substr(dash + 1);
  if (p.size() > 10 || p.find_first_not_of("0123456789") != std::string::npos ||
      n.find_first_not_of("0123456789") != std::string::npos)
    return false;
  if (host) *host = h;
  if (pid) *pid = std::stol(p);
  return true;
}

int remove_stale_temps(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  const long me = static_cast<long>(::getpid());
  while (dirent* e = ::readdir(d)) {
    std::string host;
    long pid = 0;
    if (!parse_temp_name(e->d_name, &host, &pid) || host != host_tag() || pid <= 0) continue;
    const std::string path = (dir == "/" ? "" : dir) + "/" + e->d_name;
    if (pid == me ? registered(path) : process_exists(pid)) continue;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(path.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

std::string temp_name_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  static std::mutex mu;
  static std::set<std::string> cleaned;
  const std::string dir = dir_of(path);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (cleaned.insert(dir).second) remove_stale_temps(dir);
  }
  const std::string name = kTempPrefix + host_tag() + "-" + std::to_string(static_cast<long>(::getpid())) + "-" +
                           std::to_string(counter++);
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? name : path.substr(0, slash + 1) + name;
}

[[noreturn]] void throw_write_error(const std::string& what, int err) {
  const std::string why = what + " (" + std::strerror(err) + ")";
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) throw ResourceError(why);
  throw Error(why);
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

void check_not_an_input(const std::string& output, const std::string& what, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(output, ec)) return;  // every input exists: a new file is none of them
  for (const std::string& in : inputs) {
    if (in.empty()) continue;
    std::error_code e2;
    if (fs::equivalent(output, in, e2))
      throw Error((what.empty() ? "" : what + " ") + output + ": is an input of this run (" + in +
                  "); writing it would replace it: give another name");
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  check_output_path(path);
  const std::string tmp = temp_name_for(path);
  register_temp(tmp);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    const int e = errno;
    unregister_temp(tmp);
    throw_write_error(path + ": cannot write", e);
  }
  errno = 0;
  const bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (ok && !closed) err = errno;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok && closed) err = errno;
    std::remove(tmp.c_str());
    unregister_temp(tmp);
    throw_write_error(path + ": write failed", err ? err : EIO);
  }
  unregister_temp(tmp);
}

}  // namespace gmmdiff
