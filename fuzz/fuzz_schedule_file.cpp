// libFuzzer target fuzz_schedule_file: see run_schedule_file in fuzz_targets.hpp. Seeds: fuzz/corpus/fuzz_schedule_file/.
#include <cstddef>
#include <cstdint>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  gmmdiff_fuzz::run_schedule_file(data, size);
  return 0;
}
