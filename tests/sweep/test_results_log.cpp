// ResultsLog and read_results (host/sweep/results_log.cpp): a partial last line (kill -9 during
// the write) is dropped and appended after, a corrupt complete line is an error naming it,
// duplicate keys count once, and a key is never appended twice.
#include <gtest/gtest.h>

#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "sweep/results_log.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

TEST(SweepResultsLog, DropsAPartialLastLineAndAppendsAfterIt) {
  const std::string dir = fresh_dir("log");
  const std::string path = dir + "/results.jsonl";
  const std::string l1 = row_to_json(sample_row(8)), l2 = row_to_json(sample_row(16)), l3 = row_to_json(sample_row(32));
  write_text(path, l1 + "\n" + l2 + "\n" + l3.substr(0, l3.size() / 2));  // kill -9 during the third write
  {
    ResultsLog log(path);
    EXPECT_EQ(log.rows().size(), 2u);
    EXPECT_EQ(log.dropped_bytes(), l3.size() / 2);
    EXPECT_TRUE(log.has(sample_row(16).key));
    EXPECT_FALSE(log.has(sample_row(32).key));
    log.append(sample_row(32));
    EXPECT_THROW(log.append(sample_row(32)), Error);  // never a duplicate
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], l1);
  EXPECT_EQ(lines[2], l3);
  ResultsLog again(path);
  EXPECT_EQ(again.rows().size(), 3u);
  EXPECT_EQ(again.dropped_bytes(), 0u);
}

TEST(SweepResultsLog, ACorruptCompleteLineIsAnErrorNamingIt) {
  const std::string dir = fresh_dir("corrupt");
  const std::string path = dir + "/results.jsonl";
  write_text(path, row_to_json(sample_row(8)) + "\n{\"garbage\n" + row_to_json(sample_row(16)) + "\n");
  try {
    ResultsLog log(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("results.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(SweepResultsLog, DuplicateKeysCountOnce) {
  const std::string dir = fresh_dir("dup");
  const std::string path = dir + "/results.jsonl";
  const std::string l = row_to_json(sample_row(8));
  write_text(path, l + "\n" + l + "\n");
  ResultsLog log(path);
  EXPECT_EQ(log.rows().size(), 1u);
  EXPECT_EQ(log.duplicates(), 1u);
  EXPECT_EQ(read_results(path).size(), 1u);
}
