// io/atomic_file: temporaries of a fixed short name (a target near NAME_MAX still gets one), stale
// ones of dead processes removed by the next write in their folder (only ours), outputs that are
// inputs refused, and write errors classified (a full disk is a resource, exit 3). Issue 15.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmmdiff/error.hpp"
#include "io/atomic_file.hpp"

using namespace gmmdiff;
namespace fs = std::filesystem;

namespace {

std::string fresh(const std::string& name) {
  const std::string d = testing::TempDir() + "/atomic_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// The pid of a process that has exited (a child that was waited for).
long dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int st = 0;
  ::waitpid(p, &st, 0);
  return static_cast<long>(p);
}

void touch(const std::string& p) { std::ofstream(p) << "x"; }

}  // namespace

TEST(AtomicFile, TemporaryNamesAreOursAndShort) {
  const std::string dir = fresh("names");
  const std::string t1 = temp_name_for(dir + "/" + std::string(250, 'y')), t2 = temp_name_for(dir + "/y");
  EXPECT_NE(t1, t2);
  const std::string name = fs::path(t1).filename().string();
  EXPECT_LT(name.size(), 64u) << name;
  std::string host;
  long pid = 0;
  ASSERT_TRUE(parse_temp_name(name, &host, &pid)) << name;
  EXPECT_EQ(pid, static_cast<long>(::getpid()));
  EXPECT_EQ(host.size(), 8u);
  for (const char* other : {"y.npy.tmp.123", ".gmmdiff-tmp-", ".gmmdiff-tmp-zzzzzzzz-1-0", ".gmmdiff-tmp-0123abcd-x-0",
                            ".gmmdiff-tmp-0123abcd-12-", "gmmdiff-tmp-0123abcd-12-0"})
    EXPECT_FALSE(parse_temp_name(other)) << other;
}

// A target whose name is near NAME_MAX (255): its temporary used to be the name plus ".tmp.<pid>",
// which the filesystem refused (ENAMETOOLONG).
TEST(AtomicFile, ATargetNamedNearNameMaxIsWritten) {
  const std::string dir = fresh("long");
  const std::string path = dir + "/" + std::string(250, 'a') + ".json";
  write_file_atomic(path, "{}\n");
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

// A temporary left by a process that died without its handlers (kill -9) is removed by the next
// write in that folder; nothing that is not ours is touched: another host's, a live process's,
// other names.
TEST(AtomicFile, StaleTemporariesOfDeadProcessesAreRemoved) {
  const std::string dir = fresh("stale");
  std::string host;
  ASSERT_TRUE(parse_temp_name(fs::path(temp_name_for(testing::TempDir() + "/x")).filename().string(), &host));
  const std::string other_host = host == "00000000" ? "00000001" : "00000000";
  const std::string dead = dir + "/.gmmdiff-tmp-" + host + "-" + std::to_string(dead_pid()) + "-0";
  const std::string live = dir + "/.gmmdiff-tmp-" + host + "-" + std::to_string(::getppid()) + "-3";
  const std::string foreign = dir + "/.gmmdiff-tmp-" + other_host + "-" + std::to_string(dead_pid()) + "-0";
  const std::string unrelated = dir + "/results.csv.tmp.1";
  for (const auto& p : {dead, live, foreign, unrelated}) touch(p);
  write_file_atomic(dir + "/out.txt", "hello\n");
  EXPECT_FALSE(fs::exists(dead)) << "the temporary of a dead process stayed";
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_TRUE(fs::exists(unrelated));
  EXPECT_TRUE(fs::exists(dir + "/out.txt"));
  EXPECT_EQ(remove_stale_temps(dir), 0);
}

TEST(AtomicFile, AnOutputThatIsAnInputIsRefused) {
  const std::string dir = fresh("input");
  const std::string in = dir + "/model.json";
  touch(in);
  fs::create_hard_link(in, dir + "/hard.json");
  fs::create_symlink(in, dir + "/soft.json");
  const std::string dotdot = dir + "/../" + fs::path(dir).filename().string() + "/model.json";
  for (const std::string& out : {in, dir + "/hard.json", dir + "/soft.json", dotdot})
    EXPECT_THROW(check_not_an_input(out, "--out", {dir + "/other.json", in}), Error) << out;
  EXPECT_NO_THROW(check_not_an_input(dir + "/new.npy", "--out", {in}));
  touch(dir + "/old.npy");
  EXPECT_NO_THROW(check_not_an_input(dir + "/old.npy", "--out", {in}));
}

TEST(AtomicFile, AFullDiskIsAResourceError) {
  for (int e : {ENOSPC, EDQUOT, EFBIG}) {
    try {
      throw_write_error("y.npy: write failed", e);
    } catch (const ResourceError&) {
      continue;
    } catch (...) {
    }
    ADD_FAILURE() << "errno " << e << " is not a ResourceError";
  }
  try {
    throw_write_error("y.npy: write failed", EIO);
  } catch (const ResourceError&) {
    ADD_FAILURE() << "EIO is not a resource";
  } catch (const Error& err) {
    EXPECT_EQ(std::string(err.what()), "y.npy: write failed (Input/output error)");
  }
}
