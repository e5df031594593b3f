// gmmdiff: what the operating system says about the machine: the memory available, and the CPU
// time the hypervisor took (steal), so that a timing says whether it shared its cores.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gmmdiff {

/// MemAvailable from /proc/meminfo in bytes; 0 where it cannot be read.
std::size_t mem_available_bytes();
/// What a chunk is planned with: mem_available_bytes(), or 4 GiB where that is unknown.
std::size_t mem_budget_bytes();

/// The machine's CPU time so far, all CPUs, in ticks of /proc/stat's first line.
struct CpuTicks {
  bool known = false;  ///< false where /proc/stat is absent or unreadable
  uint64_t total = 0;  ///< every field: user, nice, system, idle, iowait, irq, softirq, steal
  uint64_t steal = 0;  ///< time a virtual machine's CPUs were ready to run but the hypervisor ran others
};

/// The ticks of a /proc/stat "cpu  ..." line; unknown for any other line.
CpuTicks parse_cpu_ticks(const std::string& line);
/// The ticks now (/proc/stat).
CpuTicks cpu_ticks();
/// Of the CPU time between a and b (all CPUs), the percentage the hypervisor took; NaN where either
/// is unknown or no tick passed (an interval shorter than a tick, 10 ms).
double steal_percent(const CpuTicks& a, const CpuTicks& b);

}  // namespace gmmdiff
