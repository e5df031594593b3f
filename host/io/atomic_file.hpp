// gmmdiff: files written whole or not at all (a temporary file beside the target, then rename).
#pragma once
#include <string>
#include <vector>

namespace gmmdiff {

/// Writes contents to path via a temporary in the same directory (temp_name_for) and rename(2);
/// throws gmmdiff::Error on failure (ResourceError for a full disk or quota, throw_write_error),
/// leaving no temporary behind.
void write_file_atomic(const std::string& path, const std::string& contents);
/// Throws gmmdiff::Error unless path can be written by write_file_atomic or NpyWriter: a non-empty
/// name, not a directory, a regular file if it exists (the rename would replace a device or a FIFO
/// by a regular file), in a directory that exists. `what` (e.g. "--out") starts the message.
void check_output_path(const std::string& path, const std::string& what = "");
/// Throws gmmdiff::Error when output names the same file as one of inputs (the same path, or a
/// link to it): writing it would replace an input of the very run that reads it.
/// "<what> <output>: is an input of this run (<input>); give another name".
void check_not_an_input(const std::string& output, const std::string& what, const std::vector<std::string>& inputs);

/// A new temporary name in path's directory: ".gmmdiff-tmp-<host>-<pid>-<n>", where host is 8 hex
/// digits of a hash of the host name, pid this process and n a counter. Its length does not depend
/// on path's file name, so a target named near NAME_MAX still gets a temporary. The first call
/// for a directory also removes that directory's stale temporaries (remove_stale_temps).
std::string temp_name_for(const std::string& path);
/// Whether a file name (no directory) is one of our temporaries; if so, its host hash and pid.
bool parse_temp_name(const std::string& name, std::string* host = nullptr, long* pid = nullptr);
/// Removes the temporaries of dir that a gmmdiff process of this host left when it died without
/// running its handlers (kill -9, a power cut): those named by parse_temp_name with this host's
/// hash and the pid of a process that no longer exists (or this process's pid, not in use by it).
/// Nothing else is touched. Returns how many were removed.
int remove_stale_temps(const std::string& dir);

/// A failed write's error: ResourceError (exit 3) for a full disk, a quota or a file-size limit
/// (ENOSPC, EDQUOT, EFBIG), gmmdiff::Error (exit 2) otherwise. "<what> (<strerror>)".
[[noreturn]] void throw_write_error(const std::string& what, int err);

/// Temporaries being written right now: a signal whose default action ends the process (SIGINT,
/// SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ, ... and the
/// crash signals SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) is caught by the handler that
/// install_cleanup_on_signals() installs, which unlinks them and dies by the same signal, so an
/// interrupted run leaves only complete files behind. Signals the process was started with
/// ignored stay ignored (nohup's SIGHUP, trap '' PIPE), except SIGINT and SIGQUIT, which a shell
/// ignores in its background jobs on its own account; handlers someone else installed (a
/// sanitizer's) stay. At most kMaxTemps at once (more are simply not tracked; remove_stale_temps then finds them).
constexpr int kMaxTemps = 64;
void register_temp(const std::string& tmp);
void unregister_temp(const std::string& tmp);
void install_cleanup_on_signals();

}  // namespace gmmdiff
