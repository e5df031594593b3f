// gmmdiff (sweep): the lock of a sweep's output directory, so that two sweeps never write the same
// results.jsonl (docs/sweeps.md, "The output directory").
#pragma once
#include <string>

namespace gmmdiff {

/// An exclusive, non-blocking flock(2) on <dir>/lock for the object's lifetime. A second
/// holder gets gmmdiff::Error ("another gmmdiff sweep is writing DIR (pid P)").
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace gmmdiff
