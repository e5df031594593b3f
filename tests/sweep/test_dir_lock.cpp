// DirLock (host/sweep/dir_lock.cpp): a second writer of the same output directory gets one clear
// line naming the holder's pid.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "gmmdiff/error.hpp"
#include "sweep/dir_lock.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

TEST(SweepLock, ASecondWriterGetsOneClearLine) {
  const std::string dir = fresh_dir("lock");
  DirLock first(dir);
  try {
    DirLock second(dir);
    FAIL() << "the second lock was granted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("another gmmdiff sweep is writing"), std::string::npos) << m;
    EXPECT_NE(m.find("pid " + std::to_string(::getpid())), std::string::npos) << m;
  }
}
