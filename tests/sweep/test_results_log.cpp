// ResultsLog and read_results (host/sweep/results_log.cpp): a partial last line (kill -9 during
// the write) is dropped and appended after, a corrupt complete line is an error naming it,
// duplicate keys count once, and a key is never appended twice.
#include <gtest/gtest.h>
#include <sys/stat.h>

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

// Issue 15: a last line that is a whole row without its newline (a file edited by hand, a copy
// that dropped it) is a finished run: read by read_results, kept and completed by ResultsLog (it
// was dropped by report and run again by sweep). A write cut by a kill never parses as a row.
TEST(SweepResultsLog, AWholeLastRowWithoutItsNewlineIsKept) {
  const std::string dir = fresh_dir("no_newline");
  const std::string path = dir + "/results.jsonl";
  const std::string l1 = row_to_json(sample_row(8)), l2 = row_to_json(sample_row(16));
  write_text(path, l1 + "\n" + l2);
  EXPECT_EQ(read_results(path).size(), 2u);
  {
    ResultsLog log(path);
    EXPECT_EQ(log.rows().size(), 2u);
    EXPECT_TRUE(log.completed_last_line());
    EXPECT_EQ(log.dropped_bytes(), 0u);
    log.append(sample_row(32));
  }
  EXPECT_EQ(slurp_file(path), l1 + "\n" + l2 + "\n" + row_to_json(sample_row(32)) + "\n");
  // Every strict prefix of a row is an unfinished run.
  for (std::size_t cut : {l2.size() - 1, l2.size() / 2, std::size_t(1)}) {
    write_text(path, l1 + "\n" + l2.substr(0, cut));
    EXPECT_EQ(read_results(path).size(), 1u) << cut;
  }
}

// Issue 15: a row is checked against its key: params that are not the run the key names (an edited
// line, a line of another sweep's file) are an error naming the line, not a row reported as that run.
TEST(SweepResultsLog, ARowWhoseParamsAreNotItsKeyIsRefused) {
  const std::string dir = fresh_dir("key_mismatch");
  const std::string path = dir + "/results.jsonl";
  SweepRow edited = sample_row(8);
  edited.p.T = 64;  // the key still says T = 8
  write_text(path, row_to_json(sample_row(16)) + "\n" + row_to_json(edited) + "\n");
  for (int reader = 0; reader < 2; ++reader) {
    try {
      if (reader == 0) (void)read_results(path);
      else ResultsLog log(path);
      ADD_FAILURE() << "a row whose key is not its params' was read (reader " << reader << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("results.jsonl:2: malformed row: its key " + edited.key +
                                           " is not the key of its params (" + edited.p.key() + ")"),
                std::string::npos)
          << e.what();
    }
  }
}

// Issue 15: results.jsonl must be the sweep's own regular file: a FIFO would block the resume.
TEST(SweepResultsLog, NotARegularFileIsRefused) {
  const std::string dir = fresh_dir("fifo_log");
  const std::string path = dir + "/results.jsonl";
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
  EXPECT_THROW(ResultsLog log(path), Error);
  EXPECT_THROW(read_results(path), Error);
}
