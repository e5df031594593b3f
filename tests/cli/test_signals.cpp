// Ctrl-C / SIGTERM during a run leave no output file and no temporary behind (issue 5).
#include <gtest/gtest.h>
#include <dirent.h>

#include <string>

#include "util/cli_util.hpp"

using namespace gmmdiff::test;

namespace {
int files_starting_with(const std::string& dir, const std::string& prefix) {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) n += std::string(e->d_name).rfind(prefix, 0) == 0;
    ::closedir(d);
  }
  return n;
}
}  // namespace

TEST(Signals, InterruptedSampleLeavesNothing) {
  for (const char* sig : {"TERM", "INT"}) {
    SCOPED_TRACE(sig);
    const std::string dir = testing::TempDir();
    // This process's own name: test runs of other checkouts may share the temporary directory.
    const std::string name = "interrupted_" + std::to_string(::getpid()) + "_" + sig + ".npy";
    const std::string out = dir + "/" + name;
    // a run of several seconds, killed after half a second
    const std::string cmd = std::string("CI=1 '") + GMMDIFF_CLI_PATH + "' sample --preset two-point --d 32 --n 4000000 --T 400 " +
                            "--backend cpu --out " + out + " 2>/dev/null & pid=$!; sleep 0.7; kill -" + sig +
                            " $pid; wait $pid; echo $?";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[64] = {0};
    ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
    ::pclose(p);
    const int code = std::atoi(buf);
    EXPECT_EQ(code, 128 + (std::string(sig) == "TERM" ? 15 : 2)) << "the process must die by the signal";
    EXPECT_FALSE(exists(out));
    EXPECT_EQ(files_starting_with(dir, name), 0) << "a temporary was left";
  }
}
