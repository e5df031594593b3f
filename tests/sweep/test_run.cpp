// run_sweep and run_one (host/sweep/run.cpp): resuming after a partial line with the same rows
// (the command killed with SIGKILL: tests/cli/test_cmd_sweep.cpp), notes about rows of another
// build, a different sweep in the same directory refused, a schedule file's kind reaching the run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"
#include "gmmdiff/version.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

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
    return parse_sweep(R"({"n": 2000, "backend": "cpu", "tv": {"stats": "means", "bootstrap": 20},
                           "schedule": {"file": "values.txt", "kind": ")" + kind + R"("}})",
                       dir + "/s.json", dir);
  };
  const SweepSpec alpha = sweep("alpha"), abar = sweep("abar");
  ASSERT_EQ(alpha.runs.size(), 1u);
  EXPECT_EQ(alpha.runs[0].schedule_kind, "alpha");
  EXPECT_EQ(abar.runs[0].schedule_kind, "abar");
  EXPECT_NE(alpha.runs[0].key(), abar.runs[0].key());
  const auto cpu = make_backend("cpu", 1);
  const SweepRow ra = run_one(alpha.runs[0], 0, *cpu), rb = run_one(abar.runs[0], 0, *cpu);
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

TEST(SweepRun, BoundsAddTheBracketThroughTheBoundsApi) {
  // A two-point run with bounds: the row's upper side is path_bound's (called directly with the
  // run's options: the same figures bit for bit), the reference is there (reducible) and inside
  // the bracket; ddim gets the exact figure instead; a run without bounds has no bracket.
  const SweepSpec spec = parse_sweep(
      R"({"T": 16, "d": 2, "sd": 0.5, "n": 2000, "backend": "cpu", "tv": {"stats": "means", "bootstrap": 20},
          "bounds": {"M": 8, "n": 256}, "grids": [{}, {"sampler": "ddim", "sd": 1}, {"bounds": false}]})",
      "b.json");
  ASSERT_EQ(spec.runs.size(), 3u);
  const auto cpu = make_backend("cpu", 1);
  auto kr = make_bounds_kernels("cpu", 1);
  const SweepRow pr = run_one(spec.runs[0], 0, *cpu, {}, kr.get());
  ASSERT_TRUE(pr.error.empty()) << pr.error;
  const RowBracket& b = pr.bracket;
  ASSERT_TRUE(b.present);
  EXPECT_TRUE(b.error.empty()) << b.error;
  PresetParams pp;
  pp.d = 2;
  pp.sd = {0.5};
  const Mixture target = make_preset(pp);
  ScheduleParams sp;
  sp.T = 16;
  const Schedule sched = make_schedule(sp);
  SampleOptions opt;
  opt.stop = 1;
  opt.seed = 0;
  BoundsOptions bo;
  bo.n = 256;
  bo.M = 8;
  const PathBound pb = path_bound(target, sched, opt, bo, *kr);
  EXPECT_EQ(b.tv_upper, pb.tv_upper());
  EXPECT_EQ(b.tv_upper_mean, pb.tv_upper_mean());
  EXPECT_EQ(b.kl_upper, pb.kl.upper95());
  EXPECT_EQ(b.kl_upper_mean, pb.kl.mean);
  EXPECT_EQ(b.kl_upper_se, pb.kl.se);
  EXPECT_EQ(b.M, 8);
  EXPECT_EQ(b.n, 256u);
  EXPECT_TRUE(std::isnan(b.tv_exact));
  ASSERT_TRUE(std::isfinite(b.tv_reference));
  EXPECT_EQ(b.tv_reference, exact_reference(target, sched, opt).tv);
  EXPECT_LE(b.tv_reference, b.tv_upper);
  EXPECT_LE(pr.figure().ci_lo, b.tv_reference);
  // The row round-trips with its bracket.
  const SweepRow q = parse_row(row_to_json(pr));
  EXPECT_EQ(q.bracket.tv_upper, b.tv_upper);
  EXPECT_EQ(q.bracket.tv_reference, b.tv_reference);

  const SweepRow dr = run_one(spec.runs[1], 0, *cpu, {}, kr.get());
  ASSERT_TRUE(dr.bracket.present);
  EXPECT_TRUE(std::isnan(dr.bracket.tv_upper));
  ASSERT_TRUE(std::isfinite(dr.bracket.tv_exact));
  EXPECT_LE(dr.bracket.tv_exact_lo, dr.bracket.tv_reference);
  EXPECT_GE(dr.bracket.tv_exact_hi, dr.bracket.tv_reference);
  EXPECT_EQ(dr.bracket.n, 256u);

  const SweepRow nr = run_one(spec.runs[2], 0, *cpu);
  EXPECT_FALSE(nr.bracket.present);
  EXPECT_EQ(row_to_json(nr).find("tv_upper"), std::string::npos);
}

// Issue 15: a resume whose input files changed is refused, naming the file and how to start a new
// directory; it never mixes rows of the old contents with runs of the new. inspect_sweep_dir (the
// dry run) says the same before anything is run, and both accept the file once it is restored.
TEST(SweepRun, AResumeAfterAnInputFileChangedIsRefused) {
  const std::string dir = fresh_dir("changed_inputs");
  const std::string out = dir + "/out";
  const std::string model = write_text(dir + "/m.json", R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  const std::string sched = write_text(dir + "/sched.json", R"({"alpha": [0.99, 0.95, 0.9, 0.8, 0.7, 0.6]})");
  const std::string text = R"({"family": {"model": "m.json"}, "schedule": {"file": "sched.json"}, "n": 500,
                               "seeds": 2, "backend": "cpu", "tv": {"stats": "means", "bootstrap": 20}})";
  SweepRunOptions o;
  o.out_dir = out;
  const SweepSpec spec = parse_sweep(text, dir + "/s.json", dir);
  ASSERT_EQ(spec.runs.size(), 2u);
  ASSERT_EQ(run_sweep(spec, o).ran, 2u);
  EXPECT_EQ(lines_of(out + "/" + kSweepKeysFile), (std::vector<std::string>{spec.runs[0].key(), spec.runs[1].key()}));
  const std::string before = slurp_file(out + "/results.jsonl");

  auto refused = [&](const std::string& file) {
    const SweepSpec edited = parse_sweep(text, dir + "/s.json", dir);
    for (int dry = 0; dry < 2; ++dry) {
      try {
        if (dry) (void)inspect_sweep_dir(edited, out);
        else (void)run_sweep(edited, o);
        ADD_FAILURE() << "resumed after " << file << " changed (dry run: " << dry << ")";
      } catch (const Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("holds runs made with another version of the " + file), std::string::npos) << w;
        EXPECT_NE(w.find("--out NEW_DIR"), std::string::npos) << w;
      }
    }
    EXPECT_EQ(slurp_file(out + "/results.jsonl"), before) << "results.jsonl changed";
  };
  write_text(model, R"({"weights": [0.5, 0.5], "means": [[2, 0], [0, 1]]})");
  // Rows name the files by their absolute, normalised paths.
  refused("model file " + std::filesystem::path(model).lexically_normal().string());
  write_text(model, R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  write_text(sched, R"({"alpha": [0.99, 0.95, 0.9, 0.8, 0.7, 0.5]})");
  refused("schedule file " + std::filesystem::path(sched).lexically_normal().string());
  write_text(sched, R"({"alpha": [0.99, 0.95, 0.9, 0.8, 0.7, 0.6]})");
  const SweepDirStatus st = inspect_sweep_dir(spec, out);
  EXPECT_EQ(st.done.size(), 2u);
  const SweepOutcome again = run_sweep(parse_sweep(text, dir + "/s.json", dir), o);
  EXPECT_EQ(again.done_before, 2u);
  EXPECT_EQ(again.ran, 0u);
}

// Issue 15: an output the sweep writes that is one of its inputs is refused before it is touched.
TEST(SweepRun, AnInputInsideTheOutputDirectoryIsNotReplaced) {
  const std::string dir = fresh_dir("input_is_output");
  const std::string out = dir + "/out";
  std::filesystem::create_directories(out);
  const std::string model =
      write_text(out + "/results.csv", R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  SweepRunOptions o;
  o.out_dir = out;
  const SweepSpec spec = parse_sweep(R"({"family": {"model": "out/results.csv"}, "T": 8, "n": 100, "backend": "cpu"})",
                                     dir + "/s.json", dir);
  try {
    run_sweep(spec, o);
    ADD_FAILURE() << "the model file was overwritten";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is an input of this run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp_file(model), R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
}
