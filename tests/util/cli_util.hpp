// Test helper: run the gmmdiff CLI as a subprocess and capture its exit code, stdout and stderr.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace gmmdiff::test {

struct CliResult {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs a shell command line with CI=1 (no progress drawing), capturing its exit code and output.
inline CliResult run_shell(const std::string& command) {
  static int counter = 0;
  const std::string base = testing::TempDir() + "/cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  const std::string cmd = "CI=1 " + command + " >" + base + ".out 2>" + base + ".err";
  const int st = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

/// Runs `gmmdiff <args>` (args already shell-quoted) with CI=1 (no progress drawing).
inline CliResult run_cli(const std::string& args) { return run_shell(std::string("'") + GMMDIFF_CLI_PATH + "' " + args); }

inline bool exists(const std::string& p) { return std::ifstream(p).good(); }

}  // namespace gmmdiff::test
