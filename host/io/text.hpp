// gmmdiff (io): small text helpers shared by the layers above: hashing for keys, round-trip number
// formatting, timestamps, reading a whole text file, and "did you mean" suggestions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gmmdiff::text {

constexpr uint64_t kFnvOffset = 1469598103934665603ULL;
/// FNV-1a 64 of n bytes, continuing from h.
uint64_t fnv1a(const void* data, std::size_t n, uint64_t h = kFnvOffset);
inline uint64_t fnv1a(const std::string& s, uint64_t h = kFnvOffset) { return fnv1a(s.data(), s.size(), h); }
/// 16 lower-case hex digits.
std::string hex16(uint64_t h);
/// Shortest text that reads back to the same double (locale-independent; 0.5 and 5e-1 give "0.5").
std::string num(double x);
/// The current time as "YYYY-MM-DDThh:mm:ssZ".
std::string utc_now();
/// The whole file as bytes (read_input_file of io/input.hpp: a regular file only); gmmdiff::Error
/// "<path>: ... <what>" when it is missing, a directory, a device, a FIFO or unreadable.
std::string read_text(const std::string& path, const std::string& what);
/// Case-insensitive Levenshtein distance (for "did you mean" suggestions).
std::size_t edit_distance(const std::string& a, const std::string& b);
std::string join(const std::vector<std::string>& v, const char* sep = ", ");

}  // namespace gmmdiff::text
