// gmmdiff: atomic file writes.
#include "atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gmmdiff/error.hpp"

namespace gmmdiff {

std::string temp_name_for(const std::string& path) {
  return path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = temp_name_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  GMMDIFF_EXPECTS(f, path, ": cannot write (", std::strerror(errno), ")");
  const bool ok = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size() &&
                  std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": write failed (" + std::strerror(err) + ")");
  }
}

}  // namespace gmmdiff
