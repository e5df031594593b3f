// Sweeps (host/sweep/, include/gmmdiff/sweep.hpp): parsing and expansion, bad input as one clear
// line, the resumable results file (a partial last line from kill -9), the lock, and resuming a
// sweep with the same rows (the command killed with SIGKILL: tests/cli/test_cmd_sweep.cpp).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "util/cli_util.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "gmmdiff/version.hpp"

#include <nlohmann/json.hpp>

using namespace gmmdiff;
using namespace gmmdiff::test;
namespace fs = std::filesystem;

namespace {

/// A fresh, empty directory under the test temp dir.
std::string fresh_dir(const std::string& name) {
  const std::string d = testing::TempDir() + "/sweep_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) v.push_back(l);
  return v;
}

std::string error_of(const std::string& json) {
  try {
    parse_sweep(json, "t.json", ".");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

/// A sweep small enough for tests: 6 runs of a few milliseconds to a few tens of milliseconds.
const char* const kTinySweep = R"({"name": "tiny", "family": "two-point", "d": [2, 3], "T": [8, 16, 32],
  "n": 3000, "tv": {"stats": "means,radial", "bootstrap": 20}, "backend": "cpu"})";

}  // namespace

// ---------------------------------------------------------------- parsing

TEST(SweepParse, ScalarsAndListsExpandInFixedOrder) {
  const SweepSpec s = parse_sweep(
      R"({"family": "random-sphere", "d": [2, 4], "K": "d", "T": [8, 16], "seeds": 2, "n": 100})", "t.json");
  ASSERT_EQ(s.runs.size(), 8u);
  // d outer, then T, then seed innermost.
  const int want[8][3] = {{2, 8, 0}, {2, 8, 1}, {2, 16, 0}, {2, 16, 1}, {4, 8, 0}, {4, 8, 1}, {4, 16, 0}, {4, 16, 1}};
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE("run " + std::to_string(i) + ": " + s.runs[i].label());
    EXPECT_EQ(s.runs[i].d, want[i][0]);
    EXPECT_EQ(s.runs[i].T, want[i][1]);
    EXPECT_EQ(s.runs[i].seed, static_cast<uint64_t>(want[i][2]));
    EXPECT_EQ(s.runs[i].K, s.runs[i].d);
    EXPECT_EQ(s.runs[i].K_spec, "d");
    EXPECT_EQ(s.runs[i].tv.seed, s.runs[i].seed);
  }
  EXPECT_EQ(s.name, "t");
}

TEST(SweepParse, KSpecExpressions) {
  struct Case {
    const char* text;
    int d, K;
    const char* canonical;
  } cases[] = {{"8", 5, 8, "8"},     {"d", 5, 5, "d"},       {"4d", 5, 20, "4d"},     {"4*d", 5, 20, "4d"},
               {"d+1", 5, 6, "d+1"}, {"2d-1", 5, 9, "2d-1"}, {" d + 2 ", 3, 5, "d+2"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const KSpec k = KSpec::parse(c.text, "test");
    EXPECT_EQ(k.resolve(c.d), c.K);
    EXPECT_EQ(k.text, c.canonical);
  }
  for (const char* bad : {"", "x", "d+", "-d", "0d", "d*2", "1.5", "dd"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(KSpec::parse(bad, "test"), Error);
  }
}

TEST(SweepParse, AxesThatDoNotApplyCollapse) {
  // eps without a score error, variance under ddim and K of two-point do not make new runs.
  const SweepSpec s = parse_sweep(
      R"({"family": "two-point", "K": [2, "d"], "eps": [0.1, 0.2], "sampler": ["ddpm", "ddim"],
          "variance": ["beta", "posterior"], "T": 16, "n": 100})",
      "t.json");
  // ddpm x {beta, posterior} + ddim once.
  ASSERT_EQ(s.runs.size(), 3u);
  for (const auto& r : s.runs) {
    SCOPED_TRACE(r.label());
    EXPECT_EQ(r.K, 2);
    EXPECT_EQ(r.eps, 0.0);
  }
}

TEST(SweepParse, GridsAreAUnionOverridingTheTopLevel) {
  const SweepSpec s = parse_sweep(
      R"({"family": "two-point", "d": [2, 4], "n": 100,
          "grids": [{"T": [8, 16]}, {"T": 16, "score_error": "means", "eps": [0.1, 0.2]}, {"T": 8}]})",
      "t.json");
  // 2 d x 2 T, then 2 d x 2 eps at T = 16; the third grid repeats runs of the first.
  ASSERT_EQ(s.runs.size(), 8u);
  EXPECT_EQ(s.runs[4].score_error, ScoreErrorKind::Means);
  std::set<std::string> keys;
  for (const auto& r : s.runs) EXPECT_TRUE(keys.insert(r.key()).second) << r.label();
}

TEST(SweepParse, KeysAreStableAndCanonical) {
  const auto a = parse_sweep(R"({"sd": 0.5, "T": 16, "n": 100})", "a.json").runs.at(0);
  const auto b = parse_sweep(R"({"sd": 5e-1, "T": [16], "n": 1e2})", "b.json").runs.at(0);
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.key().size(), 16u);
  auto c = a;
  c.seed = 1;
  EXPECT_NE(a.key(), c.key());
  c = a;
  c.tv.bins = 30;
  EXPECT_NE(a.key(), c.key());
}

TEST(SweepParse, UnknownKeysNameTheKeyAndListTheAllowedOnes) {
  const std::string e = error_of(R"({"Ts": [8], "n": 100})");
  SCOPED_TRACE(e);
  EXPECT_NE(e.find("t.json"), std::string::npos);
  EXPECT_NE(e.find("\"Ts\""), std::string::npos);
  EXPECT_NE(e.find("did you mean \"T\""), std::string::npos);
  EXPECT_NE(e.find("allowed:"), std::string::npos);
  EXPECT_NE(e.find("family"), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  for (const char* j : {R"({"T": 8, "tv": {"bin": 3}})", R"({"T": 8, "family": {"name": "simplex", "k": 3}})",
                        R"({"T": 8, "grids": [{"name": "x"}]})", R"({"T": 8, "schedule": {"nam": "lcw"}})"}) {
    const std::string m = error_of(j);
    SCOPED_TRACE(j);
    EXPECT_NE(m.find("unknown key"), std::string::npos) << m;
    EXPECT_NE(m.find("allowed:"), std::string::npos) << m;
  }
}

TEST(SweepParse, ImpossibleValuesAreOneClearLine) {
  struct Case {
    const char* json;
    const char* says;
  } cases[] = {
      {R"({"T": 1})", "T >= 2"},
      {R"({"T": 0})", "out of range"},
      {R"({"T": 8, "d": 0})", "out of range"},
      {R"({"T": 8, "family": "random-sphere", "K": 0})", "out of range"},
      {R"({"T": 8, "family": "random-sphere", "K": "d-3", "d": 2})", "K >= 1"},
      {R"({"T": 8, "family": "simplex", "d": 2, "K": 4})", "d + 1"},
      {R"({"T": 8, "family": {"name": "random-sphere", "K": 2, "full_rank": true}, "d": 4})", "full rank"},
      {R"({"T": 8, "family": {"name": "two-point", "K": 3}})", "K = 2"},
      {R"({"T": 8, "sd": 0})", "sd > 0"},
      {R"({"T": 8, "radius": -1})", "radius >= 0"},
      {R"({"T": 8, "n": 5})", "out of range"},
      {R"({"T": 8, "seeds": 0})", "out of range"},
      {R"({"T": 8, "seeds": []})", "empty list"},
      {R"({"T": 8, "score_error": "means", "eps": -0.1})", "eps >= 0"},
      {R"({"T": 8, "family": "blob"})", "unknown family"},
      {R"({"T": 8, "sampler": "euler"})", "sampler"},
      {R"({"T": 8, "backend": "gpu"})", "allowed: auto, cpu, cuda"},
      {R"({"T": 8, "schedule": "fast"})", "unknown schedule"},
      {R"({"T": 8.5})", "integer"},
      {R"({"d": 4})", "missing"},
      {R"({"T": 8, "family": {"model": "/nonexistent/model.json"}})", "family.model"},
      {R"({"T": 8,})", "not valid JSON"},
      {R"([8, 16])", "JSON object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.says), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(SweepParse, ModelFileFamilyTakesItsShapeFromTheFile) {
  const std::string dir = fresh_dir("model");
  write_text(dir + "/m.json", R"({"weights": [0.5, 0.3, 0.2], "means": [[1, 0, 0], [0, 1, 0], [0, 0, 2]], "sd": 1.0})");
  const SweepSpec s = load_sweep_file(write_text(
      dir + "/s.json", R"({"family": {"model": "m.json"}, "d": [2, 8], "K": [5], "sd": [0.5], "T": 16, "n": 100})"));
  ASSERT_EQ(s.runs.size(), 1u);  // d, K and sd come from the file
  EXPECT_EQ(s.runs[0].d, 3);
  EXPECT_EQ(s.runs[0].K, 3);
  EXPECT_EQ(s.runs[0].sd, 1.0);
  EXPECT_EQ(s.runs[0].family, "model:m");
  EXPECT_FALSE(s.runs[0].model_hash.empty());
}

TEST(SweepParse, EmbeddedDefaultsParse) {
  for (const char* kind : {"cpu", "cuda"}) {
    SCOPED_TRACE(kind);
    const SweepSpec s = parse_sweep(default_sweep_json(kind), std::string("default ") + kind);
    EXPECT_GT(s.runs.size(), 50u);
    std::set<std::string> families;
    std::set<double> sds;
    for (const auto& r : s.runs) {
      families.insert(r.family);
      sds.insert(r.sd);
      EXPECT_EQ(r.backend, kind);
    }
    EXPECT_TRUE(families.count("two-point") && families.count("random-sphere"));
    EXPECT_TRUE(sds.count(1.0) && sds.size() >= 2);
  }
}

// ---------------------------------------------------------------- rows and the results file

namespace {
SweepRow sample_row(int T, uint64_t seed = 0) {
  SweepRow r;
  r.p = parse_sweep(R"({"T": 8, "n": 100})", "t.json").runs.at(0);
  r.p.T = T;
  r.p.seed = seed;
  r.key = r.p.key();
  r.sweep = "t";
  r.index = static_cast<std::size_t>(T);
  StatResult a;
  a.name = "means[0]";
  a.tv = 0.125;
  a.tv_corrected = 0.12;
  a.floor = 0.01;
  a.ci_lo = 0.1;
  a.ci_hi = 0.14;
  a.resolved = true;
  StatResult b = a;
  b.name = "radial";
  b.tv_corrected = 0.3;  // larger, but not resolved: the figure stays means[0]
  b.ci_lo = -0.1;
  b.resolved = false;
  r.stats = {a, b};
  r.best = 1;
  r.eps_score = 0.25;
  r.seconds = 1.5;
  r.backend = "cpu";
  r.device = "2 threads, \"quoted\"";
  r.version = "0.1.0";
  return r;
}
}  // namespace

TEST(SweepRow, JsonRoundTripAndFigure) {
  const SweepRow r = sample_row(64);
  const std::string line = row_to_json(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const SweepRow q = parse_row(line);
  EXPECT_EQ(q.key, r.key);
  EXPECT_EQ(q.p.key(), r.p.key());
  ASSERT_EQ(q.stats.size(), 2u);
  EXPECT_EQ(q.stats[1].name, "radial");
  EXPECT_EQ(q.stats[1].ci_lo, -0.1);
  EXPECT_EQ(q.eps_score, 0.25);
  EXPECT_EQ(q.device, r.device);
  EXPECT_EQ(q.figure().name, "means[0]");  // resolved statistics win over larger unresolved ones
  EXPECT_EQ(q.tv(), 0.12);
  const std::string csv = rows_to_csv({q});
  EXPECT_NE(csv.find("\"2 threads, \"\"quoted\"\"\""), std::string::npos) << csv;
  EXPECT_THROW(parse_row("{\"key\": 1}"), Error);
  EXPECT_THROW(parse_row("{not json"), Error);
}

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

// ---------------------------------------------------------------- running and resuming

TEST(SweepRun, ResumesAfterAPartialLineWithTheSameRows) {
  const std::string dir = fresh_dir("resume");
  const SweepSpec spec = parse_sweep(kTinySweep, "tiny.json");
  SweepRunOptions o;
  o.out_dir = dir;
  const SweepOutcome first = run_sweep(spec, o);
  ASSERT_EQ(first.ran, spec.runs.size());
  ASSERT_EQ(first.rows.size(), spec.runs.size());

  // Cut the file in the middle of its fourth line, as kill -9 during that write would.
  const std::string path = dir + "/results.jsonl";
  const auto lines = lines_of(path);
  // The first row as another build would have written it.
  nlohmann::json row0 = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(row0.at("version"), version());
  row0["version"] = "0.0.1+gdeadbeef0000";
  std::string cut = row0.dump() + "\n";
  for (int i = 1; i < 3; ++i) cut += lines[i] + "\n";
  cut += lines[3].substr(0, 40);
  write_text(path, cut);

  std::vector<std::string> notes;
  SweepCallbacks cb;
  cb.on_note = [&](const std::string& s) { notes.push_back(s); };
  const SweepOutcome second = run_sweep(spec, o, cb);
  EXPECT_EQ(second.done_before, 3u);
  EXPECT_EQ(second.ran, spec.runs.size() - 3);
  ASSERT_EQ(second.rows.size(), spec.runs.size());
  for (std::size_t i = 0; i < spec.runs.size(); ++i) {
    SCOPED_TRACE(spec.runs[i].label());
    EXPECT_EQ(second.rows[i].key, first.rows[i].key);
    // Randomness is a pure function of the seed: the redone runs give the same figures.
    EXPECT_EQ(second.rows[i].tv(), first.rows[i].tv());
  }
  EXPECT_EQ(lines_of(path).size(), spec.runs.size());
  bool said = false, other_build = false;
  for (const auto& n : notes) {
    said = said || n.find("partial last line") != std::string::npos;
    other_build = other_build || n.find("1 finished runs were made by gmmdiff 0.0.1+gdeadbeef0000") != std::string::npos;
  }
  EXPECT_TRUE(said);
  EXPECT_TRUE(other_build) << "no note about the row from another build";
  EXPECT_EQ(lines_of(dir + "/results.csv").size(), spec.runs.size() + 1);

  // A different sweep in the same directory is refused, and nothing changes.
  const SweepSpec other = parse_sweep(R"({"T": [8], "n": 100, "backend": "cpu"})", "other.json");
  EXPECT_THROW(run_sweep(other, o), Error);
  EXPECT_EQ(lines_of(path).size(), spec.runs.size());
}

TEST(SweepRun, AScheduleFilesKindReachesTheSchedule) {
  // The same text values read as alpha_t or as abar_t are two different schedules: "kind" must
  // reach make_schedule (it was parsed and then dropped), and runs of the two differ in key and TV.
  const std::string dir = fresh_dir("kind");
  write_text(dir + "/values.txt", "0.95 0.9 0.85 0.8 0.75 0.7 0.65 0.6\n");
  auto sweep = [&](const std::string& kind) {
    return parse_sweep(R"({"T": 8, "n": 2000, "backend": "cpu", "tv": {"stats": "means", "bootstrap": 20},
                           "schedule": {"file": "values.txt", "kind": ")" + kind + R"("}})",
                       dir + "/s.json", dir);
  };
  const SweepSpec alpha = sweep("alpha"), abar = sweep("abar");
  ASSERT_EQ(alpha.runs.size(), 1u);
  EXPECT_EQ(alpha.runs[0].schedule_kind, "alpha");
  EXPECT_EQ(abar.runs[0].schedule_kind, "abar");
  EXPECT_NE(alpha.runs[0].key(), abar.runs[0].key());
  const SweepRow ra = run_one(alpha.runs[0], 0, 1, {}), rb = run_one(abar.runs[0], 0, 1, {});
  EXPECT_NE(ra.tv(), rb.tv()) << "alpha and abar readings gave the same run";
  // a text file's values need a kind (docs/formats.md): without one the sweep is refused at once
  try {
    sweep("auto");
    ADD_FAILURE() << "a text schedule without a kind was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("alpha_t or abar_t"), std::string::npos) << e.what();
  }
  // the kind survives a results.jsonl round trip
  EXPECT_EQ(parse_row(row_to_json(ra)).p.schedule_kind, "alpha");
}
