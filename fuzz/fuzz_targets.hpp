// gmmdiff fuzzing: the bodies of the libFuzzer targets (docs/reliability.md, "Fuzzing and
// sanitizers"), in a header so that tests/fuzz/test_fuzz_regressions.cpp replays the corpus through
// exactly the same code. Each run_* takes the fuzzer's bytes, writes them to a file in a private
// temporary directory (the loaders take paths) and calls the loader, catching gmmdiff::Error only:
// any other exception, an ASan or UBSan report, a hang or an out-of-memory is a bug.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/schedule.hpp"
#if __has_include("gmmdiff/sweep.hpp")
#include "gmmdiff/sweep.hpp"
#define GMMDIFF_FUZZ_HAVE_SWEEP 1
#endif

namespace gmmdiff_fuzz {

/// The process's temporary directory (created on first use, removed at normal exit). The string
/// is deliberately never destroyed: the atexit handler that removes the folder runs after the
/// destructors of statics constructed before it was registered.
inline const std::string& temp_dir() {
  static const std::string* const dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gmmdiff-fuzz-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::perror("gmmdiff fuzz: mkdtemp");
      std::abort();
    }
    auto* d = new std::string(tmpl);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

/// Writes bytes to <temp_dir>/<name> (replacing it) and returns the path.
inline std::string write_file(const std::string& name, const uint8_t* data, std::size_t size) {
  const std::string path = temp_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror("gmmdiff fuzz: fopen");
    std::abort();
  }
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

inline std::string write_file(const std::string& name, const std::string& text) {
  return write_file(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

/// A valid little-endian .npy (version 1.0) of float64 values with the given shape text,
/// e.g. "(2, 2)" or "(3,)": fixtures that model inputs may refer to.
inline std::string npy_f8(const std::string& shape, std::size_t count, double value) {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
  dict += std::string((64 - (10 + dict.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  out += dict;
  for (std::size_t i = 0; i < count; ++i) out.append(reinterpret_cast<const char*>(&value), 8);
  return out;
}

/// fuzz_npy: read_npy_header and read_npy (host/io/npy.cpp).
inline void run_npy(const uint8_t* data, std::size_t size) {
  const std::string path = write_file("input.npy", data, size);
  try {
    (void)gmmdiff::read_npy_header(path);
  } catch (const gmmdiff::Error&) {
  }
  try {
    (void)gmmdiff::read_npy(path);
  } catch (const gmmdiff::Error&) {
  }
}

/// fuzz_model_json: load_model_json (host/core/model.cpp), with and without normalize_weights. Beside
/// the input lie valid .npy fixtures (m22.npy: 2 x 2 means, v22.npy: 2 x 2 variances, r3.npy:
/// 1-D of 3) so that "means_npy" and "var_diag_npy" reach the code that combines them with the JSON.
inline void run_model_json(const uint8_t* data, std::size_t size) {
  static const bool fixtures = [] {
    write_file("m22.npy", npy_f8("(2, 2)", 4, 0.5));
    write_file("v22.npy", npy_f8("(2, 2)", 4, 1.5));
    write_file("r3.npy", npy_f8("(3,)", 3, 1.0));
    return true;
  }();
  (void)fixtures;
  const std::string path = write_file("model.json", data, size);
  for (bool normalize : {false, true}) {
    gmmdiff::ModelOptions opt;
    opt.normalize_weights = normalize;
    try {
      (void)gmmdiff::load_model_json(path, opt);
    } catch (const gmmdiff::Error&) {
    }
  }
}

/// fuzz_schedule_file: make_schedule with name "file" (host/core/schedule.cpp). The first byte chooses
/// how the file is read (its low 3 bits, so that '0'..'7' keep the corpus files readable):
///   bits 0-1: file_kind  0 auto, 1 alpha, 2 abar, 3 "bogus" (must be refused with an Error)
///   bit 2:    the file is named sched.npy (read as .npy) instead of sched.txt (JSON or text)
/// The rest of the input is the file's contents.
inline void run_schedule_file(const uint8_t* data, std::size_t size) {
  if (size < 1) return;
  static const char* const kKinds[] = {"auto", "alpha", "abar", "bogus"};
  const unsigned mode = data[0] & 7u;
  gmmdiff::ScheduleParams p;
  p.name = "file";
  p.file_kind = kKinds[mode & 3u];
  p.file = write_file((mode & 4u) ? "sched.npy" : "sched.txt", data + 1, size - 1);
  try {
    (void)gmmdiff::make_schedule(p);
  } catch (const gmmdiff::Error&) {
  }
}

#ifdef GMMDIFF_FUZZ_HAVE_SWEEP
/// fuzz_sweep_json: the parse-only entry points of sweeps: parse_sweep on the bytes as a sweep
/// (nothing is run), and parse_row on the same bytes as one line of results.jsonl (read when a
/// sweep resumes). Relative paths resolve in the temporary directory, which holds valid
/// fixtures: model.json (K = 2, d = 2), alpha.json and abar.txt schedules.
inline void run_sweep_json(const uint8_t* data, std::size_t size) {
  static const bool fixtures = [] {
    write_file("model.json", "{\"weights\": [0.5, 0.5], \"means\": [[1, 0], [-1, 0]], \"sd\": 1.0}\n");
    write_file("alpha.json", "{\"alpha\": [0.9, 0.8, 0.7, 0.6]}\n");
    write_file("abar.txt", "0.9 0.5 0.2 0.05\n");
    return true;
  }();
  (void)fixtures;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)gmmdiff::parse_sweep(text, "fuzz.json", temp_dir());
  } catch (const gmmdiff::Error&) {
  }
  try {
    (void)gmmdiff::parse_row(text);
  } catch (const gmmdiff::Error&) {
  }
}
#endif

}  // namespace gmmdiff_fuzz
