// Fuzz regressions (docs/reliability.md, "Fuzzing and sanitizers"): every input that once made a
// loader crash, leak an exception other than gmmdiff::Error or trip ASan/UBSan now gives a
// gmmdiff::Error. The reproducers are kept in fuzz/corpus/<target>/crash_*, and the whole seed
// corpus is replayed through the fuzz targets' own harness (fuzz/fuzz_targets.hpp), which lets
// only gmmdiff::Error through; under scripts/sanitize.sh these run with ASan and UBSan.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/schedule.hpp"

using namespace gmmdiff;
namespace fs = std::filesystem;

namespace {

const std::string kCorpus = std::string(GMMDIFF_SOURCE_DIR) + "/fuzz/corpus/";

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string p = testing::TempDir() + "/" + name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A .npy v1.0 header (no data) with the given dtype and shape text.
std::string npy_header_only(const std::string& descr, const std::string& shape) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  dict += std::string((64 - (10 + dict.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict;
}

template <typename F>
void expect_gmmdiff_error(F&& f, const std::string& must_contain) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find(must_contain), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a gmmdiff::Error: " << e.what();
  }
}

// Runs every file of fuzz/corpus/<target>/ through the target's harness; returns how many.
template <typename Run>
std::size_t replay_corpus(const std::string& target, Run run) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kCorpus + target))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const std::string bytes = read_bytes(f);
    EXPECT_NO_THROW(run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  return files.size();
}

}  // namespace

// Found by fuzz_npy: shape (2147483647, 2147483649) of '<f4' asks for 2^64 - 4 bytes, so the data
// offset plus the data size wrapped past 2^64 to 124 bytes; the size check passed and
// vector::resize threw std::length_error. Fixed in host/io/npy.cpp (the sum is checked for wrapping).
TEST(FuzzRegression, NpyDataSizeWrappingPast2To64IsAnError) {
  const std::string bytes = npy_header_only("<f4", "(2147483647, 2147483649)");
  EXPECT_EQ(bytes, read_bytes(kCorpus + "fuzz_npy/crash_size_wraps_2pow64.npy"));
  const std::string p = write_temp("fuzz_wrap.npy", bytes);
  EXPECT_NO_THROW(read_npy_header(p));
  expect_gmmdiff_error([&] { read_npy(p); }, "truncated .npy");
  // The same file reached through the loaders that read .npy files.
  ScheduleParams sp;
  sp.name = "file";
  sp.file = p;
  sp.file_kind = "alpha";
  expect_gmmdiff_error([&] { make_schedule(sp); }, "truncated .npy");
  const std::string model = write_temp("fuzz_wrap_model.json", R"({"weights": [1], "means_npy": "fuzz_wrap.npy"})");
  expect_gmmdiff_error([&] { load_model_json(model); }, "truncated .npy");
}

// Found by fuzz_schedule_file (the seed itself): a number out of range of a double in a schedule
// JSON made nlohmann::json throw out_of_range.406, which escaped make_schedule. Fixed in
// host/core/schedule.cpp (every nlohmann::json exception of the parse becomes a gmmdiff::Error).
TEST(FuzzRegression, ScheduleJsonNumberOverflowIsAnError) {
  for (const char* text : {R"({"alpha": [1e999]})", R"({"abar": [0.5, -1e400]})"}) {
    SCOPED_TRACE(text);
    ScheduleParams sp;
    sp.name = "file";
    sp.file = write_temp("fuzz_overflow_schedule.json", text);
    expect_gmmdiff_error([&] { make_schedule(sp); }, "does not fit in a double");
  }
}

// The model loader already turned the same overflow into a gmmdiff::Error; kept as a guard.
TEST(FuzzRegression, ModelJsonNumberOverflowIsAnError) {
  const std::string p = write_temp("fuzz_overflow_model.json", R"({"weights": [1], "means": [[1e999]]})");
  expect_gmmdiff_error([&] { load_model_json(p); }, "does not fit in a double");  // io/input.cpp: every loader
}

TEST(FuzzRegression, NpyCorpusReplays) { EXPECT_GT(replay_corpus("fuzz_npy", gmmdiff_fuzz::run_npy), 0u); }

TEST(FuzzRegression, ModelJsonCorpusReplays) {
  EXPECT_GT(replay_corpus("fuzz_model_json", gmmdiff_fuzz::run_model_json), 0u);
}

TEST(FuzzRegression, ScheduleFileCorpusReplays) {
  EXPECT_GT(replay_corpus("fuzz_schedule_file", gmmdiff_fuzz::run_schedule_file), 0u);
}

#ifdef GMMDIFF_FUZZ_HAVE_SWEEP
// Found by fuzz_sweep_json: the same out_of_range.406 escaped parse_sweep. Fixed in host/sweep/sweep.cpp.
TEST(FuzzRegression, SweepJsonNumberOverflowIsAnError) {
  const std::string text = read_bytes(kCorpus + "fuzz_sweep_json/crash_number_overflow.json");
  expect_gmmdiff_error([&] { parse_sweep(text, "crash_number_overflow.json", testing::TempDir()); },
                       "does not fit in a double");
}

TEST(FuzzRegression, SweepJsonCorpusReplays) {
  EXPECT_GT(replay_corpus("fuzz_sweep_json", gmmdiff_fuzz::run_sweep_json), 0u);
}
#endif

