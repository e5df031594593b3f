// Signals during a run leave no output file and no temporary behind (issue 5): every signal whose
// default action ends the process (issue 15: SIGPIPE, SIGUSR1, SIGALRM, ... left the temporary);
// a signal ignored at start stays ignored (nohup); and a temporary that SIGKILL left is removed by
// the next run that writes in its folder.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>

#include <filesystem>
#include <string>

#include "io/atomic_file.hpp"
#include "util/cli_util.hpp"

using namespace gmmdiff::test;

namespace {
/// gmmdiff's temporaries in dir (io/atomic_file.hpp names them).
int our_temporaries(const std::string& dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) n += gmmdiff::parse_temp_name(e->d_name);
    ::closedir(d);
  }
  return n;
}

std::string fresh(const std::string& name) {
  const std::string d = testing::TempDir() + "/signals_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// Starts a sample of several seconds writing out, waits `wait`, sends sig with `prefix` run in
/// the same shell first; returns the exit status reported by the shell.
int run_and_signal(const std::string& out, const std::string& sig, const std::string& prefix = "",
                   const char* wait = "0.7") {
  const std::string cmd = prefix + "CI=1 '" + GMMDIFF_CLI_PATH + "' sample --preset two-point --d 32 --n 4000000 --T 400 " +
                          "--backend cpu --out " + out + " 2>/dev/null & pid=$!; sleep " + wait + "; kill -" + sig +
                          " $pid; wait $pid; echo $?";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[64] = {0};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  return got ? std::atoi(buf) : -1;
}
}  // namespace

TEST(Signals, EverySignalThatEndsTheRunLeavesNothing) {
  const std::string dir = fresh("every");
  for (const char* sig : {"TERM", "INT", "HUP", "QUIT", "PIPE", "USR1", "USR2", "ALRM"}) {
    SCOPED_TRACE(sig);
    const std::string out = dir + "/interrupted_" + sig + ".npy";
    const int code = run_and_signal(out, sig);
    EXPECT_GT(code, 128) << "the process must die by the signal";
    EXPECT_FALSE(exists(out));
    EXPECT_EQ(our_temporaries(dir), 0) << "a temporary was left";
  }
}

TEST(Signals, ASignalIgnoredAtStartStaysIgnored) {
  // nohup (or trap '' HUP) asks the process to survive a hang-up: it used to die by it anyway.
  const std::string dir = fresh("nohup");
  const std::string out = dir + "/survives.npy";
  const std::string cmd = "trap '' HUP; CI=1 '" + std::string(GMMDIFF_CLI_PATH) +
                          "' sample --preset two-point --d 8 --n 200000 --T 50 --backend cpu --out " + out +
                          " 2>/dev/null & pid=$!; sleep 0.3; kill -HUP $pid; wait $pid; echo $?";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {0};
  ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
  ::pclose(p);
  EXPECT_EQ(std::atoi(buf), 0);
  EXPECT_TRUE(exists(out));
}

TEST(Signals, ATemporaryLeftBySigkillIsRemovedByTheNextRunThere) {
  const std::string dir = fresh("sigkill");
  const int code = run_and_signal(dir + "/killed.npy", "KILL", "", "1.0");
  EXPECT_EQ(code, 128 + SIGKILL);
  ASSERT_EQ(our_temporaries(dir), 1) << "SIGKILL cannot be caught: its temporary stays";
  const CliResult r = run_cli("sample --preset two-point --n 16 --T 4 --out '" + dir + "/next.npy'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(our_temporaries(dir), 0);
  EXPECT_TRUE(exists(dir + "/next.npy"));
}
