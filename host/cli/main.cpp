// gmmdiff: the command-line entry point. Subcommands register themselves (command.hpp); errors
// become one line on stderr and a non-zero exit code, never a crash.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <new>

#include "io/atomic_file.hpp"
#include "cli/command.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/version.hpp"

namespace gmmdiff::cli {

std::vector<CommandInfo>& registry() {
  static std::vector<CommandInfo> r;
  return r;
}

bool progress_enabled() { return ::isatty(2) && std::getenv("CI") == nullptr; }

}  // namespace gmmdiff::cli

int main(int argc, char** argv) {
  using namespace gmmdiff::cli;
  gmmdiff::install_cleanup_on_signals();  // Ctrl-C / SIGTERM leave only complete files
  CLI::App app{"gmmdiff " + gmmdiff::version() +
               ": sample Gaussian mixtures with DDPM/DDIM and the exact score, on CPU or CUDA, and check "
               "published convergence bounds by measuring total variation."};
  app.set_version_flag("--version", gmmdiff::version());
  app.require_subcommand(1);
  auto cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](const CommandInfo& a, const CommandInfo& b) { return a.order < b.order; });
  std::map<CLI::App*, Runner> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners[sub] = c.setup(*sub);
  }
  // A first word that is neither an option nor a command: CLI11 would only say that a subcommand
  // is required, so name the word and the commands.
  if (argc > 1 && argv[1][0] != '-' &&
      std::none_of(cmds.begin(), cmds.end(), [&](const CommandInfo& c) { return c.name == argv[1]; })) {
    std::string names;
    for (const auto& c : cmds) names += (names.empty() ? "" : ", ") + c.name;
    std::cerr << "gmmdiff: error: unknown command '" << argv[1] << "' (allowed: " << names << ")\n";
    return kBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::string help = "gmmdiff";  // the subcommand being parsed, if any, has the relevant --help
    for (const CLI::App* sub : app.get_subcommands()) help += " " + sub->get_name();
    std::cerr << "gmmdiff: error: " << what << " (see " << help << " --help)\n";
    return kBadInput;
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const gmmdiff::ResourceError& e) {
      std::cerr << "gmmdiff: error: " << e.what() << "\n";
      return kResource;
    } catch (const gmmdiff::Error& e) {
      std::cerr << "gmmdiff: error: " << e.what() << "\n";
      return kBadInput;
    } catch (const std::bad_alloc&) {
      std::cerr << "gmmdiff: error: out of memory (try a smaller --chunk or --n)\n";
      return kResource;
    } catch (const std::exception& e) {
      std::cerr << "gmmdiff: internal error: " << e.what() << "\n";
      return kInternal;
    }
  }
  return kBadInput;
}
