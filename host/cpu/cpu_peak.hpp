// gmmdiff: the CPU's FMA peak from a microbenchmark of its widest vector unit (bench's FLOP limit:
// a BLAS call would measure whichever kernel the environment selects, e.g. SSE3 kernels where
// OpenBLAS does not know the CPU, not the machine).
#pragma once

namespace gmmdiff {
namespace cpu_peak {

/// The vector unit the loop runs on: the widest this CPU has (zmm with AVX-512, ymm with AVX2 and
/// FMA, else SSE2's xmm with a multiply and an add).
struct Unit {
  const char* name;
  int bytes;  ///< register width
};
Unit widest_unit();

/// Runs `iters` iterations of 12 independent multiply-add chains on one thread; *flop receives
/// the FLOP done (2 per lane per multiply-add). Returns a value derived from the chains, to keep.
double fma_loop(bool fp64, long iters, double* flop);

}  // namespace cpu_peak
}  // namespace gmmdiff
