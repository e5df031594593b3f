// gmmdiff: files written whole or not at all (temporary file beside the target, then rename).
#pragma once
#include <string>

namespace gmmdiff {

/// Writes contents to path via path.tmp.<pid> and rename(2); throws gmmdiff::Error on failure,
/// leaving no temporary behind.
void write_file_atomic(const std::string& path, const std::string& contents);
/// Throws gmmdiff::Error unless path can be written by write_file_atomic or NpyWriter: a non-empty
/// name, not a directory, a regular file if it exists (the rename would replace a device or a FIFO
/// by a regular file), in a directory that exists. `what` (e.g. "--out") starts the message.
void check_output_path(const std::string& path, const std::string& what = "");
/// path + ".tmp." + pid: the temporary name used beside path.
std::string temp_name_for(const std::string& path);

/// Temporaries being written right now: on SIGINT/SIGTERM/SIGHUP the handler installed by
/// install_cleanup_on_signals() unlinks them before the process dies, so an interrupted run leaves
/// only complete files behind. At most kMaxTemps at once (more are simply not tracked).
constexpr int kMaxTemps = 64;
void register_temp(const std::string& tmp);
void unregister_temp(const std::string& tmp);
void install_cleanup_on_signals();

}  // namespace gmmdiff
