// gmmdiff (io): reading the files a user gives gmmdiff. Every loader (model, schedule, sweep, .npy,
// spec.json, results.jsonl) opens its file here, so that each refuses what is not a regular file
// (a directory, a device such as /dev/zero, a FIFO that would block, a socket) with one line, and
// parses JSON here, so that each refuses malformed JSON, numbers out of range and duplicate keys
// alike (docs/reliability.md).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace gmmdiff {

/// Opens `path` for reading and checks, on the open file (no race with a rename), that it is a
/// regular file. A FIFO is opened without blocking and refused, so nothing waits for a writer.
/// Returns a blocking file descriptor (O_CLOEXEC) that the caller closes. Throws gmmdiff::Error:
///   "<path>: cannot open the <noun> (<reason>)", "<path>: is a directory, not a <noun>",
///   "<path>: is a FIFO|character device|block device|socket, not a <noun> (give a regular file)".
int open_input_file(const std::string& path, const std::string& noun);

/// The whole content of a regular file opened by open_input_file.
std::string read_input_file(const std::string& path, const std::string& noun);

/// Parses JSON text, strictly: a syntax error, a number out of the range of a double (1e999) and
/// a key that appears twice in one object (which every JSON library resolves silently, usually
/// keeping the last) are each a gmmdiff::Error naming `origin`:
///   "<origin>: malformed JSON at byte N (parse error at line L, column C: ...)",
///   "<origin>: a number does not fit in a double (it must be finite)",
///   "<origin>: duplicate key "k" at /path/of/object (each key may appear once)".
nlohmann::json parse_json(const std::string& text, const std::string& origin);

}  // namespace gmmdiff
