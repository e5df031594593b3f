// gmmdiff (sweep): results.jsonl, written by ResultsLog and read by read_results
// (host/sweep/results_log.hpp, include/gmmdiff/sweep.hpp).
#include "sweep/results_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "gmmdiff/error.hpp"
#include "io/atomic_file.hpp"
#include "io/input.hpp"

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

/// The row of a last line that lacks its newline, if it is a whole row. A write that a kill cut
/// short lacks the object's closing brace, so it never parses: such a line is a run that did not
/// finish. A whole row without its newline (a file edited by hand, a copy that dropped it) is kept.
bool complete_row(const std::string& tail, SweepRow& row) {
  if (tail.find_first_not_of(" \t\r") == std::string::npos) return false;
  try {
    row = parse_row(tail);
    return true;
  } catch (const Error&) {
    return false;
  }
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
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  try {
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode))
      throw Error(path + ": not a regular file (results.jsonl must be the sweep's own file)");
    const int fl = ::fcntl(fd_, F_GETFL);
    if (fl >= 0) (void)::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
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
  SweepRow last;
  if (complete < content.size() && complete_row(content.substr(complete), last)) {
    // A whole row without its newline: complete the line, so that the next append starts a new one.
    if (::write(fd_, "\n", 1) != 1) throw_write_error(path_ + ": cannot complete the last line", errno);
    ::fsync(fd_);
    rows.push_back(std::move(last));
    completed_ = true;
  } else if (complete < content.size()) {
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
      throw_write_error(path_ + ": write failed", errno);  // a full disk is a resource (exit 3), as for sample
    }
    off += static_cast<std::size_t>(w);
  }
  if (::fsync(fd_) != 0) throw_write_error(path_ + ": fsync failed", errno);
  keys_.insert(std::upper_bound(keys_.begin(), keys_.end(), row.key), row.key);
  rows_.push_back(row);
}

std::vector<SweepRow> read_results(const std::string& path) {
  const std::string content = read_input_file(path, "results.jsonl");
  std::size_t complete = 0, duplicates = 0;
  auto rows = parse_lines(split_complete_lines(content, complete), path);
  SweepRow last;
  if (complete < content.size() && complete_row(content.substr(complete), last)) rows.push_back(std::move(last));
  return first_row_per_key(std::move(rows), duplicates);
}

}  // namespace gmmdiff
