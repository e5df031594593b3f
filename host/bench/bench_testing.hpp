// gmmdiff (private to host/bench/): the test seams of the benchmark. The tests break one
// configuration on purpose to check that a configuration failing its check against the oracle is
// reported FAILED and not timed (tests/bench/test_bench.cpp), and run the grid on a backend with
// injected faults (tests/cuda/test_cuda_rt.cpp); users call run_bench (bench.hpp).
#pragma once
#include <functional>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/bench.hpp"

namespace gmmdiff::bench_testing {

/// Sees (and may change) the tested backend's check rows before they are compared with the
/// oracle's.
using CheckHook = std::function<void(const BenchConfig&, std::vector<double>&)>;

/// run_bench with a check hook.
BenchReport run_bench(const BenchOptions& opt, const CheckHook& check_hook,
                      const std::function<void(const BenchReport&, const BenchResult&)>& on_result = {});

/// run_bench with a check hook on a backend the caller owns (opt.backend and opt.threads are then
/// only recorded): tests/cuda/test_cuda_rt.cpp runs the grid on a backend with injected faults, to
/// check that a configuration that runs out of memory does not fail the next one.
BenchReport run_bench_on(Backend& be, const BenchOptions& opt, const CheckHook& check_hook = {},
                         const std::function<void(const BenchReport&, const BenchResult&)>& on_result = {});

}  // namespace gmmdiff::bench_testing
