#include "cli/progress.hpp"

#include <cstdio>

#include "cli/command.hpp"

namespace gmmdiff::cli {

Progress::Progress(std::string label)
    : label_(std::move(label)), enabled_(progress_enabled()), start_(std::chrono::steady_clock::now()), last_(start_) {}

Progress::~Progress() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  const double f = double(done) / double(total);
  const double el = std::chrono::duration<double>(now - start_).count();
  const int w = 30, fill = static_cast<int>(f * w);
  std::fprintf(stderr, "\r%s [%.*s%*s] %5.1f%%  %.0fs elapsed, ~%.0fs left", label_.c_str(), fill,
               "##############################", w - fill, "", 100 * f, el, f > 0 ? el * (1 - f) / f : 0.0);
  std::fflush(stderr);
}

}  // namespace gmmdiff::cli
