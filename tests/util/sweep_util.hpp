// Test helpers for sweeps (tests/sweep/, tests/cli/test_cmd_sweep.cpp): fresh directories, small
// files, the lines of results.jsonl, a tiny sweep and a row with known figures.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gmmdiff/sweep.hpp"

namespace gmmdiff::test {

/// A fresh, empty directory under the test temp dir.
inline std::string fresh_dir(const std::string& name) {
  const std::string d = testing::TempDir() + "/sweep_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

inline std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

/// The whole content of a file.
inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The non-empty lines of a file.
inline std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  std::string l;
  while (std::getline(in, l))
    if (!l.empty()) v.push_back(l);
  return v;
}

/// A row's figures: its JSON line without the fields that describe time, build or host (the list
/// of tools/compare_rows.py), so that rows made by different runs of one sweep compare equal.
inline std::string row_figures(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line);
  for (const char* k : {"seconds", "eps_seconds", "wall_seconds", "elt_steps_per_s", "finished_at", "version",
                        "device", "backend", "chunks"})
    j.erase(k);
  return j.dump();
}

/// key -> row_figures of every line of a results.jsonl; fails the test on a key seen twice.
inline std::map<std::string, std::string> rows_by_key(const std::string& path) {
  std::map<std::string, std::string> out;
  for (const auto& l : lines_of(path)) {
    const std::string key = nlohmann::json::parse(l).at("key");
    EXPECT_TRUE(out.emplace(key, row_figures(l)).second) << "key " << key << " twice in " << path;
  }
  return out;
}

/// A sweep small enough for tests: 6 runs of a few milliseconds to a few tens of milliseconds.
inline const char* const kTinySweep = R"({"name": "tiny", "family": "two-point", "d": [2, 3], "T": [8, 16, 32],
  "n": 3000, "tv": {"stats": "means,radial", "bootstrap": 20}, "backend": "cpu"})";

/// A row of the run {"T": 8, "n": 100} at T and seed, with two statistics: means[0] (resolved,
/// the figure) and radial (larger but unresolved), and a device name that CSV must quote.
inline SweepRow sample_row(int T, uint64_t seed = 0) {
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

}  // namespace gmmdiff::test
