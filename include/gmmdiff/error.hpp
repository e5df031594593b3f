// gmmdiff: the one error type of the library and its precondition macro.
// The library never calls exit(): it throws gmmdiff::Error, and the CLI turns that into one line
// on stderr and a non-zero exit code.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace gmmdiff {

/// Every error the library raises. what() is one line: what is wrong, where, and what is allowed.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// Raised when a size does not fit in memory even when chunked (a separate type so that callers
/// can tell resource errors from bad input).
class ResourceError : public Error {
 public:
  explicit ResourceError(const std::string& msg) : Error(msg) {}
};

/// Raised when the arithmetic itself fails (a particle turned NaN/Inf): the input was valid, the
/// run diverged. Sweeps record it as a failed run and go on.
class NumericalError : public Error {
 public:
  explicit NumericalError(const std::string& msg) : Error(msg) {}
};

namespace detail {
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace gmmdiff

/// Precondition: throws gmmdiff::Error built from the streamed message parts when cond is false.
#define GMMDIFF_EXPECTS(cond, ...)                                   \
  do {                                                               \
    if (!(cond)) throw ::gmmdiff::Error(::gmmdiff::detail::cat(__VA_ARGS__)); \
  } while (0)
