// gmmdiff: files written whole or not at all (temporary file beside the target, then rename).
#pragma once
#include <string>

namespace gmmdiff {

/// Writes contents to path via path.tmp.<pid> and rename(2); throws gmmdiff::Error on failure,
/// leaving no temporary behind.
void write_file_atomic(const std::string& path, const std::string& contents);
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
