// The fp32 Box-Muller's inline logf, sinf and cosf (host/cpu/cpu_noise.cpp) against the glibc
// libmvec functions they copy, on every input Box-Muller gives them: the 2^24 uniforms
// u01f(x) = (float(x >> 8) + 1/2) 2^-24 and the 2^24 angles 2 pi u. Bit for bit, so today's
// streams keep every value (tests/driver/test_stream_pins.cpp pins some of them end to end).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <string>

#include "cpu/cpu_backend.hpp"
#include "cpu/cpu_noise.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
#include <gnu/libc-version.h>
#include <immintrin.h>
#define GMMDIFF_TEST_LIBMVEC 1
#pragma GCC push_options
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("arch=x86-64-v4")
extern "C" {
__m512 _ZGVeN16v_logf(__m512);
__m512 _ZGVeN16v_cosf(__m512);
__m512 _ZGVeN16v_sinf(__m512);
}
namespace {
// libmvec's AVX-512 variants on x[0..n), n a multiple of 16, 64-byte aligned arrays.
void libmvec_functions(const float* x, std::size_t n, float* log_x, float* sin_x, float* cos_x) {
  for (std::size_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_load_ps(x + i);
    _mm512_store_ps(log_x + i, _ZGVeN16v_logf(v));
    _mm512_store_ps(sin_x + i, _ZGVeN16v_sinf(v));
    _mm512_store_ps(cos_x + i, _ZGVeN16v_cosf(v));
  }
}
}  // namespace
#pragma GCC pop_options
#endif

namespace gmmdiff {
namespace {

// The glibc whose libmvec the inline functions copy (Debian 12's); elsewhere libmvec may round
// differently, and the streams are then pinned by StreamPins alone.
constexpr const char* kCopiedGlibc = "2.36";
constexpr std::size_t kInputs = std::size_t{1} << 24;

// A float array of kInputs, 64-byte aligned (the functions' contract), in the backend's buffer.
struct Floats {
  Floats() : p(static_cast<float*>(buf.reserve(kInputs * sizeof(float)))) {}
  float* data() const { return p; }
  AlignedBuffer buf;
  float* p;
};

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// u01f's 2^24 values, with its operations (float, no contraction), and their angles.
void box_muller_inputs(float* u, float* angle) {
  const float two_pi = static_cast<float>(6.283185307179586476925286766559);
  for (uint32_t k = 0; k < kInputs; ++k) {
    volatile float a = static_cast<float>(k);
    volatile float h = a + 0.5f;
    u[k] = h * 5.9604644775390625e-08f;
    angle[k] = two_pi * u[k];
  }
}

// Counts the inputs where got differs from want in its bits, and names the first.
std::size_t differences(const float* in, const float* got, const float* want, std::string* first) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kInputs; ++i)
    if (bits(got[i]) != bits(want[i])) {
      if (n++ == 0) {
        std::ostringstream os;
        os << std::setprecision(9) << "x = " << in[i] << ": inline " << got[i] << ", libmvec " << want[i];
        *first = os.str();
      }
    }
  return n;
}

TEST(CpuNoise, InlineLogSinCosMatchLibmvecOnEveryBoxMullerInput) {
#if GMMDIFF_TEST_LIBMVEC
  if (!cpu_noise::have_avx512()) GTEST_SKIP() << "no AVX-512 noise path in this build or on this CPU";
  if (std::string(gnu_get_libc_version()) != kCopiedGlibc)
    GTEST_SKIP() << "glibc " << gnu_get_libc_version() << ": the copy is of glibc " << kCopiedGlibc << "'s libmvec";
  Floats u, angle, got_log, got_sin, got_cos, want_log, want_sin, want_cos;
  box_muller_inputs(u.data(), angle.data());
  std::string first;
  // logf sees the uniforms; sinf and cosf the angles.
  cpu_noise::box_muller_functions_avx512(u.data(), kInputs, got_log.data(), got_sin.data(), got_cos.data());
  libmvec_functions(u.data(), kInputs, want_log.data(), want_sin.data(), want_cos.data());
  EXPECT_EQ(differences(u.data(), got_log.data(), want_log.data(), &first), 0u) << "logf of the uniforms; first: " << first;
  cpu_noise::box_muller_functions_avx512(angle.data(), kInputs, got_log.data(), got_sin.data(), got_cos.data());
  libmvec_functions(angle.data(), kInputs, want_log.data(), want_sin.data(), want_cos.data());
  EXPECT_EQ(differences(angle.data(), got_sin.data(), want_sin.data(), &first), 0u) << "sinf of the angles; first: " << first;
  EXPECT_EQ(differences(angle.data(), got_cos.data(), want_cos.data(), &first), 0u) << "cosf of the angles; first: " << first;
  // The angles' logf too (inputs up to 2 pi: exponents above 0 take the same path).
  EXPECT_EQ(differences(angle.data(), got_log.data(), want_log.data(), &first), 0u) << "logf of the angles; first: " << first;
#else
  GTEST_SKIP() << "libmvec's AVX-512 variants are glibc's, on x86-64 with GCC";
#endif
}

}  // namespace
}  // namespace gmmdiff
