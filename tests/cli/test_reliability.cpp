// The table "Bad input: what happens" in docs/reliability.md, run row by row (issue 5): each row's
// command must exit with the table's code, print exactly one line on stderr holding the table's
// text, and leave no file behind. The table is read from the document at run time, so the
// document cannot drift from the behaviour; and every fixture under tests/data/bad/ must be used.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "util/cli_util.hpp"

namespace {

namespace fs = std::filesystem;

constexpr const char* kDoc = "docs/reliability.md";
constexpr const char* kBegin = "<!-- bad-inputs:begin -->";
constexpr const char* kEnd = "<!-- bad-inputs:end -->";
constexpr const char* kFixtures = "tests/data/bad";
constexpr std::size_t kMinRows = 80;   // deleting (part of) the table fails TableIsComplete
constexpr int kRowTimeoutSeconds = 60; // a hang is a failure, not a stuck test suite

struct Row {
  int number = 0;
  std::string input, setup, command, stderr_has;
  int exit_code = -1;
};

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  const auto b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

/// A cell's text: trimmed, one pair of enclosing backticks removed, "\|" read as "|".
std::string cell_text(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '`' && s.back() == '`') s = s.substr(1, s.size() - 2);
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '|') continue;
    out += s[i];
  }
  return out;
}

/// The cells of a markdown table line "| a | b |" (a "\|" does not split).
std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  const std::string t = trim(line);
  for (std::size_t i = 1; i < t.size(); ++i) {  // past the leading '|'
    if (t[i] == '|' && t[i - 1] != '\\') {
      cells.push_back(cur);
      cur.clear();
    } else {
      cur += t[i];
    }
  }
  return cells;
}

struct Table {
  std::vector<Row> rows;
  std::string error;  // why the table could not be read (empty when it could)
};

/// Every row of every table between the markers: lines "| <number> | input | setup | command |
/// exit | stderr |". Header and separator lines (first cell not a number) are skipped.
Table read_table() {
  Table t;
  const std::string path = std::string(GMMDIFF_SOURCE_DIR) + "/" + kDoc;
  std::ifstream in(path);
  if (!in) {
    t.error = path + ": cannot open";
    return t;
  }
  std::string line;
  bool inside = false, seen_begin = false, seen_end = false;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find(kBegin) != std::string::npos) {
      inside = seen_begin = true;
      continue;
    }
    if (line.find(kEnd) != std::string::npos) {
      inside = false;
      seen_end = true;
      continue;
    }
    if (!inside || trim(line).rfind("|", 0) != 0) continue;
    const auto cells = split_cells(line);
    if (cells.empty()) continue;
    const std::string first = trim(cells[0]);
    if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos) continue;
    if (cells.size() != 6) {
      t.error = path + ":" + std::to_string(lineno) + ": a row needs 6 cells (#, input, setup, command, exit, " +
                "stderr), has " + std::to_string(cells.size());
      return t;
    }
    Row r;
    r.number = std::stoi(first);
    r.input = trim(cells[1]);
    r.setup = cell_text(cells[2]);
    r.command = cell_text(cells[3]);
    const std::string code = trim(cells[4]);
    if (code.empty() || code.find_first_not_of("0123456789") != std::string::npos) {
      t.error = path + ":" + std::to_string(lineno) + ": exit code '" + code + "' is not a number";
      return t;
    }
    r.exit_code = std::stoi(code);
    r.stderr_has = cell_text(cells[5]);
    t.rows.push_back(r);
  }
  if (!seen_begin || !seen_end) t.error = path + ": markers " + kBegin + " / " + kEnd + " not found";
  return t;
}

const Table& table() {
  static const Table t = read_table();
  return t;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

std::string shell_quote(const std::string& s) { return "'" + replace_all(s, "'", "'\\''") + "'"; }

/// One row's private directory: bin/gmmdiff (a link to the CLI under test: first on PATH, it makes
/// the word `gmmdiff` in a command, also after `flock ...`, run this build), tmp/ (the row's
/// $TMP) and the captured output. Removed when the row ends.
struct Workdir {
  std::string root, bin, tmp;
  Workdir() {
    std::string t = testing::TempDir();
    while (t.size() > 1 && t.back() == '/') t.pop_back();
    t += "/reliability_XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) return;
    root = t;
    bin = root + "/bin";
    tmp = root + "/tmp";
    fs::create_directories(bin);
    fs::create_directories(tmp);
    fs::create_symlink(GMMDIFF_CLI_PATH, bin + "/gmmdiff");
  }
  ~Workdir() {
    std::error_code ec;
    if (!root.empty()) fs::remove_all(root, ec);
  }
  Workdir(const Workdir&) = delete;
  Workdir& operator=(const Workdir&) = delete;
};

/// Runs a shell line from the source root with TMP set, CI=1 (no progress drawing) and the CLI on
/// PATH, under a time limit; returns the exit code, stdout and stderr.
gmmdiff::test::CliResult run_shell(const std::string& line, const Workdir& w) {
  const std::string out = w.root + "/stdout", err = w.root + "/stderr";
  const std::string cmd = "cd " + shell_quote(GMMDIFF_SOURCE_DIR) + " && TMP=" + shell_quote(w.tmp) +
                          " CI=1 PATH=" + shell_quote(w.bin) + ":\"$PATH\" timeout -k 5 " +
                          std::to_string(kRowTimeoutSeconds) + " sh -c " + shell_quote(line) + " >" +
                          shell_quote(out) + " 2>" + shell_quote(err) + " </dev/null";
  const int st = std::system(cmd.c_str());
  gmmdiff::test::CliResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = gmmdiff::test::slurp(out);
  r.err = gmmdiff::test::slurp(err);
  return r;
}

/// Everything under dir: relative path -> content (regular files), or a marker for directories
/// and other kinds. A file named `lock` is a sweep directory's flock file: it stays by design and
/// holds the pid of the last sweep that opened it, so only its presence counts.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_symlink()) m[rel] = "<symlink>";
    else if (e.is_directory()) m[rel] = "<directory>";
    else if (!e.is_regular_file()) m[rel] = "<not a regular file>";
    else if (e.path().filename() == "lock") m[rel] = "<lock>";
    else m[rel] = gmmdiff::test::slurp(e.path().string());
  }
  return m;
}

std::string describe_changes(const std::map<std::string, std::string>& before,
                             const std::map<std::string, std::string>& after) {
  std::string s;
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end()) s += " new: " + k + ";";
    else if (it->second != v) s += " changed: " + k + ";";
  }
  for (const auto& [k, v] : before)
    if (!after.count(k)) s += " removed: " + k + ";";
  return s;
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

class BadInput : public testing::TestWithParam<Row> {};

TEST_P(BadInput, Run) {
  const Row& row = GetParam();
  const Workdir w;
  ASSERT_FALSE(w.root.empty()) << "cannot create a temporary directory";
  const std::string& tmp = w.tmp;
  if (!row.setup.empty()) {
    const auto s = run_shell(row.setup, w);
    ASSERT_EQ(s.code, 0) << "row " << row.number << ": setup `" << row.setup << "` failed: " << s.err;
  }
  const auto before = snapshot(tmp);
  const auto r = run_shell(row.command, w);
  const std::string err = replace_all(r.err, tmp, "$TMP");  // as the table writes it
  SCOPED_TRACE("docs/reliability.md, bad input row " + std::to_string(row.number) + ": " + row.input +
               (row.setup.empty() ? "" : "\n  setup:   " + row.setup) + "\n  command: " + row.command +
               "\n  exit:    " + std::to_string(r.code) + " (table: " + std::to_string(row.exit_code) + ")" +
               "\n  stderr:  " + err);
  EXPECT_NE(r.code, 124) << "timed out after " << kRowTimeoutSeconds << " s";
  EXPECT_EQ(r.code, row.exit_code);
  EXPECT_EQ(count_lines(err), 1) << "stderr must be exactly one line";
  EXPECT_TRUE(!err.empty() && err.back() == '\n') << "stderr must end with a newline";
  EXPECT_NE(err.find(row.stderr_has), std::string::npos) << "stderr does not contain: " << row.stderr_has;
  const auto after = snapshot(tmp);
  EXPECT_TRUE(before == after) << "files left behind or changed under $TMP:" << describe_changes(before, after);
}

/// How GoogleTest prints a row (instead of its bytes).
void PrintTo(const Row& r, std::ostream* os) { *os << "row " << r.number << " (" << r.input << ")"; }

/// row_01, row_02, ...: by position, so that a misnumbered table (which TableIsComplete reports)
/// cannot give two tests the same name.
std::string row_name(const testing::TestParamInfo<Row>& info) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "row_%02zu", info.index + 1);
  return buf;
}

INSTANTIATE_TEST_SUITE_P(Reliability, BadInput, testing::ValuesIn(table().rows), row_name);

/// Whether `path` occurs in `text` as a whole path (not followed by more of a file name).
bool mentions(const std::string& text, const std::string& path) {
  for (std::size_t p = text.find(path); p != std::string::npos; p = text.find(path, p + 1)) {
    const std::size_t e = p + path.size();
    if (e == text.size()) return true;
    const char c = text[e];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return true;
  }
  return false;
}

TEST(Reliability, TableIsComplete) {
  const Table& t = table();
  ASSERT_TRUE(t.error.empty()) << t.error;
  EXPECT_GE(t.rows.size(), kMinRows) << "the bad-input table in " << kDoc << " lost rows";
  std::set<std::string> seen;
  bool numbered = true;
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const Row& r = t.rows[i];
    if (r.number != static_cast<int>(i + 1) && numbered) {  // the first one only, not every row after it
      ADD_FAILURE() << "rows are numbered 1, 2, ... in order: row " << i + 1 << " (" << r.input << ") is numbered "
                    << r.number;
      numbered = false;
    }
    EXPECT_FALSE(r.command.empty()) << "row " << r.number << " has no command";
    EXPECT_FALSE(r.stderr_has.empty()) << "row " << r.number << " says nothing about stderr";
    EXPECT_TRUE(seen.insert(r.setup + "\n" + r.command).second) << "row " << r.number << " repeats a command";
  }

  // Every fixture is used: named by a row (itself or a directory holding it, below tests/data/bad),
  // or named inside a fixture that is used (a model's means_npy, a sweep's schedule file).
  std::string all_rows;
  for (const Row& r : t.rows) all_rows += r.setup + "\n" + r.command + "\n";
  const fs::path src(GMMDIFF_SOURCE_DIR);
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(src / kFixtures))
    if (e.is_regular_file()) files.push_back(fs::relative(e.path(), src).generic_string());
  ASSERT_FALSE(files.empty()) << "no fixtures under " << kFixtures;
  std::set<std::string> used;
  for (const std::string& f : files) {
    for (fs::path p = f; p.generic_string() != kFixtures && !p.empty(); p = p.parent_path())
      if (mentions(all_rows, p.generic_string())) used.insert(f);
  }
  for (bool grew = true; grew;) {
    grew = false;
    for (const std::string& f : files) {
      if (used.count(f)) continue;
      const std::string name = fs::path(f).filename().string();
      for (const std::string& u : std::set<std::string>(used))
        if (mentions(gmmdiff::test::slurp((src / u).string()), name)) {
          used.insert(f);
          grew = true;
          break;
        }
    }
  }
  for (const std::string& f : files)
    EXPECT_TRUE(used.count(f)) << f << " is used by no row of the bad-input table (add a row or delete it)";
}

}  // namespace
