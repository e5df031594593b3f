// gmmdiff: the command-line entry point. Subcommands register themselves (command.hpp); errors
// become one line on stderr and a non-zero exit code, never a crash.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <new>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "dist/comm.hpp"
#include "io/atomic_file.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/version.hpp"

namespace gmmdiff::cli {

std::vector<CommandInfo>& registry() {
  static std::vector<CommandInfo> r;
  return r;
}

bool progress_enabled() { return ::isatty(2) && std::getenv("CI") == nullptr; }

}  // namespace gmmdiff::cli

namespace {

using gmmdiff::cli::ExitCode;

/// The one line of an error on stderr; under MPI with several ranks, a rank other than 0 says who
/// it is.
void report_error(const std::string& what, bool internal = false) {
  gmmdiff::dist::Comm& comm = gmmdiff::dist::world();
  std::string who;
  if (comm.size() > 1 && !comm.root())
    who = "rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size()) + ": ";
  std::cerr << (internal ? "gmmdiff: internal error: " : "gmmdiff: error: ") << who << what << std::endl;
}

ExitCode code_of(gmmdiff::dist::JobFailure::Kind k) {
  using K = gmmdiff::dist::JobFailure;
  return k == K::kResource ? gmmdiff::cli::kResource : k == K::kInternal ? gmmdiff::cli::kInternal
                                                                         : gmmdiff::cli::kBadInput;
}

/// Runs a parsed command and turns what it throws into one line and an exit code. Under MPI with
/// several ranks (docs/scale.md), a failure the ranks agreed on (dist::JobFailure) is reported by
/// rank 0 only; any other exception that leaves a command run by every rank means this rank failed
/// alone, perhaps while the others wait for it: it says so and ends the whole job (MPI_Abort).
int run_command(const gmmdiff::cli::Runner& run, gmmdiff::cli::Ranks ranks) {
  using namespace gmmdiff::cli;
  gmmdiff::dist::Comm& comm = gmmdiff::dist::world();
  const bool alone = comm.size() == 1 || ranks == Ranks::kRootOnly;
  int code = kOk;
  try {
    return run();
  } catch (const gmmdiff::dist::JobFailure& e) {
    if (e.report()) report_error(e.what(), e.kind() == gmmdiff::dist::JobFailure::kInternal);
    return code_of(e.kind());
  } catch (const gmmdiff::ResourceError& e) {
    report_error(e.what());
    code = kResource;
  } catch (const gmmdiff::Error& e) {
    report_error(e.what());
    code = kBadInput;
  } catch (const std::bad_alloc&) {
    report_error("out of memory (try a smaller --chunk or --n)");
    code = kResource;
  } catch (const std::exception& e) {
    report_error(e.what(), true);
    code = kInternal;
  }
  if (!alone) comm.abort(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gmmdiff::cli;
  gmmdiff::install_cleanup_on_signals();  // Ctrl-C / SIGTERM leave only complete files
  // Joins the MPI job when an MPI launcher started this process (docs/scale.md); else one process.
  std::unique_ptr<gmmdiff::dist::Session> session;
  try {
    session = std::make_unique<gmmdiff::dist::Session>(&argc, &argv);
  } catch (const std::exception& e) {
    std::cerr << "gmmdiff: error: " << e.what() << "\n";
    return kBadInput;
  }
  gmmdiff::dist::Comm& comm = gmmdiff::dist::world();
  // Under MPI the ranks parse the same command line: rank 0 alone prints help, versions and
  // usage errors, and every rank exits with the same code.
  const bool quiet = !comm.root();
  CLI::App app{"gmmdiff " + gmmdiff::version() +
               ": sample Gaussian mixtures with DDPM/DDIM and the exact score, on CPU or CUDA, and check "
               "published convergence bounds by measuring total variation."};
  app.set_version_flag("--version", gmmdiff::version());
  app.require_subcommand(1);
  auto cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](const CommandInfo& a, const CommandInfo& b) { return a.order < b.order; });
  std::map<CLI::App*, std::pair<Runner, Ranks>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners[sub] = {c.setup(*sub), c.ranks};
  }
  refuse_negative_unsigned(app);  // "--n -5" is not 2^64 - 5
  // A first word that is neither an option nor a command: CLI11 would only say that a subcommand
  // is required, so name the word and the commands.
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(cmds.begin(), cmds.end(), [&](const CommandInfo& c) { return c.name == argv[1]; })) {
    std::string names;
    for (const auto& c : cmds) names += (names.empty() ? "" : ", ") + c.name;
    if (!quiet) std::cerr << "gmmdiff: error: unknown command '" << argv[1] << "' (allowed: " << names << ")\n";
    return kBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return quiet ? e.get_exit_code() : app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return quiet ? e.get_exit_code() : app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return quiet ? e.get_exit_code() : app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::string help = "gmmdiff";  // the subcommand being parsed, if any, has the relevant --help
    for (const CLI::App* sub : app.get_subcommands()) help += " " + sub->get_name();
    if (!quiet) std::cerr << "gmmdiff: error: " << what << " (see " << help << " --help)\n";
    return kBadInput;
  }
  for (auto& [sub, cmd] : runners) {
    if (!sub->parsed()) continue;
    // A command that does not split its work runs on rank 0 alone; the others wait for it.
    if (cmd.second == Ranks::kRootOnly && !comm.root()) return kOk;
    return run_command(cmd.first, cmd.second);
  }
  return kBadInput;
}
