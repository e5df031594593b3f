// gmmdiff CLI: each subcommand lives in its own file (cmd_<name>.cpp) and registers itself here.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace gmmdiff::cli {

/// Runs a parsed subcommand; returns the process exit code. Throws gmmdiff::Error on bad input.
using Runner = std::function<int()>;
/// Adds a subcommand's options to `sub` (binding them to state it owns) and returns its runner.
using Setup = std::function<Runner(CLI::App& sub)>;

/// How a command runs under an MPI launcher with more than one rank (docs/scale.md).
enum class Ranks {
  kRootOnly,  ///< rank 0 runs it alone; the other ranks only wait for it
  kAll,       ///< every rank runs it: the command splits its work over dist::world()
};

struct CommandInfo {
  std::string name, help;
  Setup setup;
  int order;  ///< position in `gmmdiff --help`
  Ranks ranks = Ranks::kRootOnly;
};
std::vector<CommandInfo>& registry();

/// `static Registrar r("sample", "Draw samples", 10, setup, Ranks::kAll);` in a command's file.
struct Registrar {
  Registrar(std::string name, std::string help, int order, Setup setup, Ranks ranks = Ranks::kRootOnly) {
    registry().push_back(CommandInfo{std::move(name), std::move(help), std::move(setup), order, ranks});
  }
};

/// Exit codes: 0 ok, 1 internal error, 2 bad input or usage, 3 resources (memory, device).
enum ExitCode { kOk = 0, kInternal = 1, kBadInput = 2, kResource = 3 };

/// Whether progress should be drawn (stderr is a terminal and CI is not set).
bool progress_enabled();

}  // namespace gmmdiff::cli
