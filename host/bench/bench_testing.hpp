// gmmdiff (private to host/bench/): the test seam of the benchmark. The tests break one
// configuration on purpose to check that a configuration failing its check against the oracle is
// reported FAILED and not timed (tests/bench/test_bench.cpp); users call run_bench (bench.hpp).
#pragma once
#include <functional>
#include <vector>

#include "gmmdiff/bench.hpp"

namespace gmmdiff::bench_testing {

/// Sees (and may change) the tested backend's check rows before they are compared with the
/// oracle's.
using CheckHook = std::function<void(const BenchConfig&, std::vector<double>&)>;

/// run_bench with a check hook.
BenchReport run_bench(const BenchOptions& opt, const CheckHook& check_hook,
                      const std::function<void(const BenchReport&, const BenchResult&)>& on_result = {});

}  // namespace gmmdiff::bench_testing
