// Pins of today's particles: every seed keeps its particles, bit for bit, whatever is done to make
// the CPU path faster (issue 16). Each case runs the sampler on the CPU backend and hashes the
// output (FNV-1a over the values in the run's precision, widened to double: exact) and the realised
// eps_score; the hashes below were taken from the build of main before the speed work (commit
// 5176ff2) and must never change. A failure means a change altered some seed's particles.
//
// The bits depend on the machine's code paths, so each pin names what it was taken with:
//   fused:    the clone of the fused step the loader picks (x86-64-v4 here: AVX-512) and glibc's
//             libmvec (its vector log/sin/cos/exp), i.e. glibc's version;
//   products: OpenBLAS's kernel (openblas_get_corename()) as well, for the GEMMs.
// and all of them the flags the library was compiled with (kPinBuild: -O1 contracts no FMA, so a
// sanitizer build's bits differ).
// A case whose environment differs is skipped with a line that says so (it cannot be checked
// there), never passed. To print the hashes of this build: GMMDIFF_PRINT_PINS=1.
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/sink_util.hpp"


using namespace gmmdiff;

namespace {

std::string fused_isa() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
  return "x86-64";
#else
  return "other";
#endif
}

// OpenBLAS's kernel name, looked up in the process (the library links OpenBLAS, the tests do not).
std::string openblas_core() {
  using Fn = char* (*)();
  const auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn ? fn() : "unknown";
}

uint64_t fnv1a(const void* p, std::size_t n, uint64_t h = 1469598103934665603ull) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

struct PinCase {
  const char* name;
  const char* path;  // "auto" | "fused" | "products"
  const char* preset;
  int d, K;
  std::vector<double> sd;  // one value, or a pattern repeated over the components
  bool diagonal;     // var_diag from the preset's sd times a per-coordinate factor
  const char* schedule;
  int T;
  SamplerKind sampler;
  Variance variance;
  Precision precision;
  ScoreErrorKind err;
  double eps;
  int stop;
};

Mixture pin_model(const PinCase& c) {
  PresetParams pp;
  pp.name = c.preset;
  pp.d = c.d;
  pp.K = c.K;
  pp.radius = 2.0;
  pp.sd = c.sd;  // one value, or a pattern repeated over the K components
  if (c.sd.size() > 1) {
    pp.sd.resize(c.K);
    for (int k = 0; k < c.K; ++k) pp.sd[k] = c.sd[k % c.sd.size()];
  }
  pp.seed = 11;
  Mixture m = make_preset(pp);
  if (c.diagonal) {
    m.cov = Covariance::Diagonal;
    m.var_diag.assign(std::size_t(m.K) * m.d, 0.0);
    for (int k = 0; k < m.K; ++k)
      for (int j = 0; j < m.d; ++j)
        m.var_diag[std::size_t(k) * m.d + j] = m.sd[k] * m.sd[k] * (0.5 + 0.25 * ((j + k) % 5));
    validate(m);
  }
  return m;
}

struct PinResult {
  uint64_t particles = 0;
  uint64_t eps_score = 0;
};

PinResult run_pin(const PinCase& c) {
  const Mixture m = pin_model(c);
  ScheduleParams sp;
  sp.name = c.schedule;
  sp.T = c.T;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.n = 300;  // two blocks of 256 rows, the second partial
  o.chunk = 256;  // and two chunks
  o.sampler = c.sampler;
  o.variance = c.variance;
  o.stop = c.stop;
  o.seed = 20240607;
  o.precision = c.precision;
  o.score_error = ScoreError{c.err, c.eps};
  o.eps_samples = 64;
  o.snapshot_steps = {c.T / 2};
  auto be = make_backend("cpu", 2);
  be->set_step_path(c.path);
  test::PlacedSink sink(o.n, m.d, c.precision);
  const RunSummary r = run_sampler(m, s, o, *be, sink);
  PinResult out;
  out.particles = fnv1a(sink.y.data(), sink.y.size() * sizeof(double));
  for (const auto& snap : sink.snapshot_values) out.particles = fnv1a(snap.data(), snap.size() * sizeof(double), out.particles);
  out.eps_score = fnv1a(&r.eps_score, sizeof r.eps_score);
  return out;
}

const std::vector<PinCase>& pin_cases() {
  using SK = SamplerKind;
  using V = Variance;
  using E = ScoreErrorKind;
  const Precision f32 = Precision::FP32, f64 = Precision::FP64;
  static const std::vector<PinCase> cases = {
      {"d2_K8_ddpm_f32", "auto", "random-sphere", 2, 8, {1.0}, false, "lcw", 40, SK::DDPM, V::Beta, f32, E::None, 0, 1},
      {"d8_K8_ddim_gauss_f32", "auto", "random-sphere", 8, 8, {1.0}, false, "lcw", 30, SK::DDIM, V::Beta, f32,
       E::Gaussian, 0.3, 1},
      {"d64_K8_post_bias_f32", "auto", "random-sphere", 64, 8, {1.0}, false, "li-yan", 25, SK::DDPM, V::Posterior,
       f32, E::Bias, 0.2, 1},
      {"d64_K64_scale_f32_T16", "auto", "random-sphere", 64, 64, {1.0}, false, "lcw", 16, SK::DDPM, V::Beta, f32,
       E::Scale, 0.1, 1},
      {"d5_K3_diag_means_f64", "auto", "random-sphere", 5, 3, {0.7}, true, "cosine", 20, SK::DDPM, V::Inside, f64,
       E::Means, 0.2, 0},
      {"d33_K130_iso_weights_f32", "auto", "random-sphere", 33, 130, {0.5, 1.0, 1.5}, false, "linear", 12, SK::DDPM,
       V::Beta, f32, E::Weights, 0.3, 1},
      {"d1_K2_twopoint_f32", "auto", "two-point", 1, 2, {0.5}, false, "lcw", 24, SK::DDPM, V::Beta, f32, E::None, 0,
       1},
      {"d3_K1_gauss_f64", "auto", "gaussian", 3, 1, {1.3}, false, "lcw", 20, SK::DDPM, V::Posterior, f64, E::None, 0,
       1},
      {"d17_K5_iso_f64_ddim", "fused", "random-sphere", 17, 5, {0.8, 1.2, 1.0, 0.9, 1.1}, false, "lcw", 18, SK::DDIM,
       V::Beta, f64, E::Scale, 0.05, 1},
      {"d16_K4_products_f64", "products", "random-sphere", 16, 4, {1.0}, false, "lcw", 20, SK::DDPM, V::Beta, f64,
       E::Gaussian, 0.2, 1},
      {"d64_K8_products_f32", "products", "random-sphere", 64, 8, {1.0}, false, "lcw", 16, SK::DDPM, V::Beta, f32,
       E::None, 0, 1},
      {"d7_K6_diag_products_f32", "products", "random-sphere", 7, 6, {1.0}, true, "li-yan", 15, SK::DDPM, V::Posterior,
       f32, E::Bias, 0.1, 1},
      // The tiles with the weights across the lanes (K <= 16, one shared variance): K = 16 fills the
      // vector, K = 3 pads it; n = 300 leaves rows for the smaller tiles.
      {"d40_K16_ddpm_f32", "auto", "random-sphere", 40, 16, {1.0}, false, "lcw", 20, SK::DDPM, V::Beta, f32, E::None,
       0, 1},
      {"d13_K3_ddim_gauss_f32", "auto", "random-sphere", 13, 3, {1.0}, false, "lcw", 20, SK::DDIM, V::Beta, f32,
       E::Gaussian, 0.3, 1},
  };
  return cases;
}

struct Pin {
  const char* name;
  const char* isa;       // fused clone the hashes were taken with
  const char* glibc;     // glibc (libmvec) version
  const char* corename;  // OpenBLAS kernel (products path only; "" for the fused path)
  uint64_t particles, eps_score;
};

// Taken from main at 5176ff2 (before the speed work; main's 40115da had changed 1 - alpha_t where
// abar < 1/2, and with it the particles of the schedules that reach it, from the first pins taken at
// 38213c8) on an Intel Xeon with AVX-512 (Debian 12, glibc 2.36, OpenBLAS 0.3.21): the products
// path under each OpenBLAS kernel OPENBLAS_CORETYPE can select
// there (Prescott is what 0.3.21 picks on that Xeon by itself; Zen on AMD).
constexpr const char* kPinBuild = "Release: -O3 -DNDEBUG";

const Pin kPins[] = {
    {"d2_K8_ddpm_f32", "x86-64-v4", "2.36", "", 0xff12f6fd32fd7d83ull, 0x47fe0d7eaf8e51e3ull},
    {"d8_K8_ddim_gauss_f32", "x86-64-v4", "2.36", "", 0xfc620ccce83270bfull, 0x189cd82128d40c6dull},
    {"d64_K8_post_bias_f32", "x86-64-v4", "2.36", "", 0x3f824cea18c4d7feull, 0x05d73a86dae6f843ull},
    {"d64_K64_scale_f32_T16", "x86-64-v4", "2.36", "", 0x8b8e64d41e0cfdf3ull, 0x5fe2fec64640329full},
    {"d5_K3_diag_means_f64", "x86-64-v4", "2.36", "", 0xf0842fa568a927f5ull, 0xc0e7f9424cd92a09ull},
    {"d33_K130_iso_weights_f32", "x86-64-v4", "2.36", "", 0x790663b302134d3bull, 0x48b367fc5f4d69b5ull},
    {"d1_K2_twopoint_f32", "x86-64-v4", "2.36", "", 0xbd65924440e3b6f3ull, 0x47fe0d7eaf8e51e3ull},
    {"d3_K1_gauss_f64", "x86-64-v4", "2.36", "", 0xbce177ac13918ea3ull, 0x47fe0d7eaf8e51e3ull},
    // Added with the weights-across-lanes tiles, from that build, after `gmmdiff sample` of 5176ff2 and of
    // that build gave the same bytes for these two cases (and 125 other shapes).
    {"d40_K16_ddpm_f32", "x86-64-v4", "2.36", "", 0xedb6f4b658b00cbbull, 0x47fe0d7eaf8e51e3ull},
    {"d13_K3_ddim_gauss_f32", "x86-64-v4", "2.36", "", 0x1aa83fd7ce21f6dbull, 0xcc864f5cce789c3dull},
    {"d17_K5_iso_f64_ddim", "x86-64-v4", "2.36", "", 0xcf6fc00003a7590bull, 0xfd0c9db50c7a5dcfull},
    {"d16_K4_products_f64", "x86-64-v4", "2.36", "Prescott", 0xa1572db10695b01bull, 0xd72aebc4bcbb9159ull},
    {"d64_K8_products_f32", "x86-64-v4", "2.36", "Prescott", 0xe812a5bba889c67full, 0x47fe0d7eaf8e51e3ull},
    {"d7_K6_diag_products_f32", "x86-64-v4", "2.36", "Prescott", 0x20bfcff37ccfa947ull, 0x802ada188601896bull},
    {"d16_K4_products_f64", "x86-64-v4", "2.36", "Haswell", 0x03535f1432189e5full, 0xd72aebc4bcbb9159ull},
    {"d64_K8_products_f32", "x86-64-v4", "2.36", "Haswell", 0x3114227fde792c83ull, 0x47fe0d7eaf8e51e3ull},
    {"d7_K6_diag_products_f32", "x86-64-v4", "2.36", "Haswell", 0x1e980272d3d7e896ull, 0x802ada188601896bull},
    {"d16_K4_products_f64", "x86-64-v4", "2.36", "Zen", 0x03535f1432189e5full, 0xd72aebc4bcbb9159ull},
    {"d64_K8_products_f32", "x86-64-v4", "2.36", "Zen", 0x3114227fde792c83ull, 0x47fe0d7eaf8e51e3ull},
    {"d7_K6_diag_products_f32", "x86-64-v4", "2.36", "Zen", 0x1e980272d3d7e896ull, 0x802ada188601896bull},
    {"d16_K4_products_f64", "x86-64-v4", "2.36", "SkylakeX", 0x03535f1432189e5full, 0xd72aebc4bcbb9159ull},
    {"d64_K8_products_f32", "x86-64-v4", "2.36", "SkylakeX", 0xbeb27780f8b12c0full, 0x47fe0d7eaf8e51e3ull},
    {"d7_K6_diag_products_f32", "x86-64-v4", "2.36", "SkylakeX", 0x1e980272d3d7e896ull, 0x802ada188601896bull},
    {"d16_K4_products_f64", "x86-64-v4", "2.36", "Cooperlake", 0x03535f1432189e5full, 0xd72aebc4bcbb9159ull},
    {"d64_K8_products_f32", "x86-64-v4", "2.36", "Cooperlake", 0xbeb27780f8b12c0full, 0x47fe0d7eaf8e51e3ull},
    {"d7_K6_diag_products_f32", "x86-64-v4", "2.36", "Cooperlake", 0x1e980272d3d7e896ull, 0x802ada188601896bull},
};

/// The pin of case `name` for this environment (the first of its pins when none matches).
const Pin* find_pin(const std::string& name, const std::string& isa, const std::string& glibc,
                    const std::string& core, bool products) {
  const Pin* any = nullptr;
  for (const Pin& p : kPins) {
    if (name != p.name) continue;
    if (!any) any = &p;
    if (isa == p.isa && glibc == p.glibc && (!products || core == p.corename)) return &p;
  }
  return any;
}

}  // namespace

TEST(StreamPins, EverySeedKeepsItsParticles) {
  const bool print = std::getenv("GMMDIFF_PRINT_PINS") != nullptr;
  const std::string isa = fused_isa(), glibc = gnu_get_libc_version(), core = openblas_core();
  const std::string build = GMMDIFF_LIBRARY_BUILD;
  if (build != kPinBuild && !print)
    GTEST_SKIP() << "the pins were taken with the library built as \"" << kPinBuild << "\"; this one is \""
                 << build << "\"";
  int checked = 0, skipped = 0;
  for (const PinCase& c : pin_cases()) {
    const PinResult r = run_pin(c);
    const bool products = std::string(c.path) == "products";
    if (print)
      std::printf("    {\"%s\", \"%s\", \"%s\", \"%s\", 0x%016llxull, 0x%016llxull},\n", c.name, isa.c_str(),
                  glibc.c_str(), products ? core.c_str() : "", static_cast<unsigned long long>(r.particles),
                  static_cast<unsigned long long>(r.eps_score));
    if (build != kPinBuild) continue;  // printing only
    const Pin* p = find_pin(c.name, isa, glibc, core, products);
    if (p == nullptr) {
      ADD_FAILURE() << "no pin for case " << c.name;
      continue;
    }
    if (isa != p->isa || glibc != p->glibc || (products && core != p->corename)) {
      std::printf("[ SKIPPED  ] pin %s was taken with %s, glibc %s%s%s; this machine runs %s, glibc %s%s%s\n", c.name,
                  p->isa, p->glibc, products ? ", OpenBLAS " : "", products ? p->corename : "", isa.c_str(),
                  glibc.c_str(), products ? ", OpenBLAS " : "", products ? core.c_str() : "");
      ++skipped;
      continue;
    }
    ++checked;
    EXPECT_EQ(r.particles, p->particles) << "case " << c.name << " (d = " << c.d << ", K = " << c.K << ", path "
                                         << c.path << ", " << to_string(c.precision)
                                         << "): the particles changed";
    EXPECT_EQ(r.eps_score, p->eps_score) << "case " << c.name << ": the realised eps_score changed";
  }
  if (checked == 0) GTEST_SKIP() << "no pin was taken on a machine like this one (" << skipped << " skipped)";
}
