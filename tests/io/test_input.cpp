// io/input: every loader reads its file through open_input_file (regular files only, never
// blocking on a FIFO) and parses JSON through parse_json (malformed JSON, numbers out of range and
// duplicate keys are each one gmmdiff::Error naming the origin). Issue 15.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmmdiff/error.hpp"
#include "io/input.hpp"
#include "util/error_util.hpp"

using namespace gmmdiff;
using test::error_of;

namespace {

std::string json_error(const std::string& text) {
  return error_of([&] { (void)parse_json(text, "origin.json"); });
}

}  // namespace

TEST(InputJson, DuplicateKeysAreRefusedWithTheirPlace) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {R"({"T": 4, "T": 8})", R"(origin.json: duplicate key "T" (each key may appear once))"},
      {R"({"s": {"c0": 1, "c1": 2, "c0": 3}})", R"(origin.json: duplicate key "c0" in /s (each)"},
      {R"({"grids": [{"T": 1}, {"T": 2, "d": 1, "T": 3}]})", R"(duplicate key "T" in /grids/1)"},
      // Scalars and containers before the object both advance the array index.
      {R"({"g": [1, "x", [2], {"a": 0}, {"k": 1, "k": 2}]})", R"(duplicate key "k" in /g/4)"},
      // The first duplicate is named, not a later one.
      {R"({"a": {"x": 1, "x": 2}, "b": 1, "b": 2})", R"(duplicate key "x" in /a)"},
  };
  for (const Case& c : cases) {
    const std::string e = json_error(c.text);
    EXPECT_NE(e.find(c.want), std::string::npos) << c.text << " gave: " << e;
  }
}

TEST(InputJson, TheSameKeyInDifferentObjectsIsFine) {
  const auto j = parse_json(R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]})", "o");
  EXPECT_EQ(j["c"][1]["x"].get<int>(), 4);
}

TEST(InputJson, MalformedAndOverflowingNumbersAreOneLine) {
  EXPECT_NE(json_error(R"({"T": 8,})").find("origin.json: malformed JSON at byte 9 (parse error at line 1"),
            std::string::npos)
      << json_error(R"({"T": 8,})");
  EXPECT_EQ(json_error(R"({"T": 1e999})"), "origin.json: a number does not fit in a double (it must be finite)");
}

TEST(InputFile, RefusesWhatIsNotARegularFile) {
  const std::string dir = testing::TempDir() + "/input_file_test";
  ::mkdir(dir.c_str(), 0755);
  const std::string fifo = dir + "/fifo.json";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // A FIFO with no writer would block a plain open(2) forever: it is refused at once.
  EXPECT_EQ(error_of([&] { (void)read_input_file(fifo, "model file"); }),
            fifo + ": is a FIFO, not a model file (give a regular file)");
  EXPECT_EQ(error_of([&] { (void)read_input_file("/dev/zero", "sweep file"); }),
            "/dev/zero: is a character device, not a sweep file (give a regular file)");
  EXPECT_EQ(error_of([&] { (void)read_input_file(dir, "schedule file"); }),
            dir + ": is a directory, not a schedule file");
  EXPECT_EQ(error_of([&] { (void)read_input_file(dir + "/none", "model file"); }),
            dir + "/none: cannot open the model file (No such file or directory)");
  const std::string ok = dir + "/ok.txt";
  std::ofstream(ok) << "abc";
  EXPECT_EQ(read_input_file(ok, "x"), "abc");
  ::unlink(fifo.c_str());
}
