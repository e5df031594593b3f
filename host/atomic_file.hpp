// gmmdiff: files written whole or not at all (temporary file beside the target, then rename).
#pragma once
#include <string>

namespace gmmdiff {

/// Writes contents to path via path.tmp.<pid> and rename(2); throws gmmdiff::Error on failure,
/// leaving no temporary behind.
void write_file_atomic(const std::string& path, const std::string& contents);
/// path + ".tmp." + pid: the temporary name used beside path.
std::string temp_name_for(const std::string& path);

}  // namespace gmmdiff
