// gmmdiff: the CPU's Philox normals in AVX-512 registers (x86-64-v4), for the fused step.
//
// The same bits as the fused step's vectorised loop (block_normals in cpu_fused.cpp, the
// x86-64-v4 clone): Philox4x32-10 as detail::philox4x32_10, here with 16 lanes of 32x32->64
// multiplies (vpmuludq on the even and the odd lanes) instead of the 64-bit multiplies GCC makes of
// the portable loop, and Box-Muller on the registers with the same glibc libmvec functions
// (_ZGVeN16v_logf, ...) the vectorised loop calls (fp32's copied inline, fp64's called), so every
// value is bitwise the same: every seed keeps its particles (tests/driver/test_stream_pins.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace gmmdiff {
namespace cpu_noise {

/// True when this build has the AVX-512 path and this CPU runs it: the fused step's x86-64-v4
/// clone is the one the loader picks (the same test), so the libmvec variants match.
bool have_avx512();

/// Normals of (stream, step) for E (row, coordinate block) pairs: pair e is particle
/// first + erow[e], Philox block eblk[e]; out[4 e + c] is coordinate 4 eblk[e] + c. E is a multiple
/// of 16; erow, eblk and out are 64-byte aligned. Only where have_avx512().
void block_normals_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                          const uint32_t* eblk, float* out);
void block_normals_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                          const uint32_t* eblk, double* out);

/// The normals detail::philox_normal4<float> gives for the same E pairs, bit for bit: Box-Muller
/// with the scalar libm's logf and sincosf (the rounding the initial Y_T's pinned streams carry;
/// libmvec's differs), everything else (Philox, the uniforms, the square roots and products) 16
/// lanes at a time. Same layout and alignment as block_normals_avx512.
void block_normals_libm_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E,
                               const uint32_t* erow, const uint32_t* eblk, float* out);
/// The raw Philox words of the same E pairs: out[4 e + c] is word c of pair e (what
/// detail::philox_bits returns), for detail::box_muller4 (fp64's Y_T).
void block_words_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                        const uint32_t* eblk, uint32_t* out);

/// The fp32 Box-Muller's inline logf, sinf and cosf (bit for bit libmvec's on Box-Muller's inputs,
/// uniforms in (0, 1) and angles in [0, 2 pi)) applied to x[0..n): for the test against libmvec.
/// n is a multiple of 16; every array is 64-byte aligned.
void box_muller_functions_avx512(const float* x, std::size_t n, float* log_x, float* sin_x, float* cos_x);

/// Philox4x32-10 alone on 16 consecutive counters per call (words xor-folded into the result so
/// that nothing is optimised away): bench's cost of the generator without Box-Muller. n: blocks.
uint32_t philox_only_avx512(uint64_t seed, uint64_t n);

}  // namespace cpu_noise
}  // namespace gmmdiff
