// gmmdiff (sweep): the lock of a sweep's output directory (host/sweep/dir_lock.hpp).
#include "sweep/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gmmdiff/error.hpp"

namespace gmmdiff {
namespace {

/// The pid the holder wrote into the lock file ("" when there is none).
std::string holder_pid(int fd) {
  char buf[32] = {0};
  const ssize_t got = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "";
  while (!pid.empty() && std::isspace(static_cast<unsigned char>(pid.back()))) pid.pop_back();
  return pid;
}

/// Replaces the lock file's content with this process's pid, for the message a second writer gets.
void write_own_pid(int fd) {
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    const ssize_t w = ::pwrite(fd, me.data(), me.size(), 0);
    (void)w;
  }
}

}  // namespace

DirLock::DirLock(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open the lock file (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    const std::string pid = holder_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK)
      throw Error("another gmmdiff sweep is writing " + dir + (pid.empty() ? "" : " (pid " + pid + ")") +
                  "; wait for it to finish or stop it");
    throw Error(path + ": cannot lock (" + std::strerror(e) + ")");
  }
  write_own_pid(fd_);
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays (unlinking it would race)
}

}  // namespace gmmdiff
