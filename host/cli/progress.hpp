// gmmdiff CLI: a progress line on stderr, drawn only when stderr is a terminal and CI is unset.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace gmmdiff::cli {

class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();  ///< clears the line
  void update(uint64_t done, uint64_t total);
  /// A callback for SampleOptions::progress that updates this line.
  std::function<void(uint64_t, uint64_t)> callback() {
    return [this](uint64_t done, uint64_t total) { update(done, total); };
  }

 private:
  std::string label_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace gmmdiff::cli
