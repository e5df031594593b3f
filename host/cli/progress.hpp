// gmmdiff CLI: a progress line on stderr, drawn only when stderr is a terminal and CI is unset.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace gmmdiff::cli {

class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();  ///< clears the line
  void update(uint64_t done, uint64_t total);
  /// Installs this as the sampler's progress callback (and removes it in the destructor).
  void attach_to_sampler();

 private:
  std::string label_;
  bool enabled_;
  bool attached_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace gmmdiff::cli
