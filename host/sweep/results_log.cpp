// gmmdiff (sweep): results.jsonl, written by ResultsLog and read by read_results
// (host/sweep/results_log.hpp, include/gmmdiff/sweep.hpp).
#include "sweep/results_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "gmmdiff/error.hpp"

namespace gmmdiff {
namespace {

/// The complete lines of content (those ending in '\n', without it); complete_bytes: their length.
std::vector<std::string> split_complete_lines(const std::string& content, std::size_t& complete_bytes) {
  std::vector<std::string> lines;
  const auto last = content.rfind('\n');
  complete_bytes = last == std::string::npos ? 0 : last + 1;
  std::size_t start = 0;
  while (start < complete_bytes) {
    const auto nl = content.find('\n', start);
    lines.push_back(content.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string read_fd_all(int fd, const std::string& path) {
  std::string content;
  char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    const ssize_t got = ::pread(fd, buf, sizeof buf, off);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": read failed (" + std::strerror(errno) + ")");
    }
    if (got == 0) break;
    content.append(buf, static_cast<std::size_t>(got));
    off += got;
  }
  return content;
}

/// The rows of the lines (blank lines skipped); a bad line is an error naming path:line.
std::vector<SweepRow> parse_lines(const std::vector<std::string>& lines, const std::string& path) {
  std::vector<SweepRow> rows;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(parse_row(lines[i]));
    } catch (const Error& e) {
      throw Error(path + ":" + std::to_string(i + 1) + ": " + e.what() +
                  " (only a partial last line is repaired automatically; fix or delete this line)");
    }
  }
  return rows;
}

/// The first row of each key, in file order; duplicates counts the others.
std::vector<SweepRow> first_row_per_key(std::vector<SweepRow> rows, std::size_t& duplicates) {
  std::set<std::string> keys;
  std::vector<SweepRow> out;
  duplicates = 0;
  for (auto& r : rows) {
    if (keys.insert(r.key).second)
      out.push_back(std::move(r));
    else
      ++duplicates;
  }
  return out;
}

}  // namespace

ResultsLog::ResultsLog(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  try {
    load();
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

void ResultsLog::load() {
  const std::string content = read_fd_all(fd_, path_);
  std::size_t complete = 0;
  const auto lines = split_complete_lines(content, complete);
  auto rows = parse_lines(lines, path_);
  if (complete < content.size()) {
    // A kill during the last append left a partial line: that run did not finish.
    if (::ftruncate(fd_, static_cast<off_t>(complete)) != 0)
      throw Error(path_ + ": cannot drop the partial last line (" + std::strerror(errno) + ")");
    ::fsync(fd_);
    dropped_ = content.size() - complete;
  }
  rows_ = first_row_per_key(std::move(rows), duplicates_);
  for (const auto& r : rows_) keys_.push_back(r.key);
  std::sort(keys_.begin(), keys_.end());
}

ResultsLog::~ResultsLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool ResultsLog::has(const std::string& key) const { return std::binary_search(keys_.begin(), keys_.end(), key); }

void ResultsLog::append(const SweepRow& row) {
  if (has(row.key)) throw Error(path_ + ": run " + row.key + " is already recorded");
  const std::string line = row_to_json(row) + "\n";
  // One write(2) with O_APPEND: a kill leaves either nothing, the whole line, or a partial line
  // without its newline, which the next open drops.
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t w = ::write(fd_, line.data() + off, line.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
    }
    off += static_cast<std::size_t>(w);
  }
  if (::fsync(fd_) != 0) throw Error(path_ + ": fsync failed (" + std::strerror(errno) + ")");
  keys_.insert(std::upper_bound(keys_.begin(), keys_.end(), row.key), row.key);
  rows_.push_back(row);
}

std::vector<SweepRow> read_results(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string content;
  try {
    content = read_fd_all(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  std::size_t complete = 0, duplicates = 0;
  return first_row_per_key(parse_lines(split_complete_lines(content, complete), path), duplicates);
}

}  // namespace gmmdiff
