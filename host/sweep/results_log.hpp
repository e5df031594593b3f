// gmmdiff (sweep): results.jsonl, the log of a sweep's finished runs, one complete line per run,
// which a killed sweep resumes from without lost or duplicated rows (docs/sweeps.md).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

/// results.jsonl: one complete line per finished run, appended with O_APPEND, one write(2) and
/// fsync(2). Opening it drops a trailing partial line (a kill -9 during the write) by truncating
/// to the last newline, completes a last line that is a whole row but lacks its newline, and
/// reads the rows already present (each checked against its key: parse_row).
class ResultsLog {
 public:
  explicit ResultsLog(const std::string& path);
  ~ResultsLog();
  ResultsLog(const ResultsLog&) = delete;
  ResultsLog& operator=(const ResultsLog&) = delete;

  bool has(const std::string& key) const;
  /// Appends one row (a JSON line without newline); throws on a duplicate key or I/O error.
  void append(const SweepRow& row);
  const std::vector<SweepRow>& rows() const { return rows_; }
  /// Bytes of a partial last line removed on opening (0 when the file ended cleanly).
  std::size_t dropped_bytes() const { return dropped_; }
  /// Rows whose key appeared more than once (kept once, first wins).
  std::size_t duplicates() const { return duplicates_; }
  /// Whether the last line was a whole row without its newline (now added).
  bool completed_last_line() const { return completed_; }

 private:
  /// Reads the file, drops a partial last line, keeps the first row of each key.
  void load();

  std::string path_;
  int fd_ = -1;
  std::vector<SweepRow> rows_;
  std::vector<std::string> keys_;  // sorted
  std::size_t dropped_ = 0, duplicates_ = 0;
  bool completed_ = false;
};

}  // namespace gmmdiff
