// gmmdiff: the operating system's view of the machine (host/core/system.hpp).
#include "core/system.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

namespace gmmdiff {

std::size_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::size_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

std::size_t mem_budget_bytes() {
  const std::size_t avail = mem_available_bytes();
  return avail > 0 ? avail : std::size_t(4) << 30;
}

CpuTicks parse_cpu_ticks(const std::string& line) {
  std::istringstream in(line);
  std::string name;
  CpuTicks t;
  if (!(in >> name) || name != "cpu") return t;
  // user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
  uint64_t v[8];
  for (uint64_t& x : v)
    if (!(in >> x)) return t;
  for (uint64_t x : v) t.total += x;
  t.steal = v[7];
  t.known = true;
  return t;
}

CpuTicks cpu_ticks() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  return parse_cpu_ticks(line);
}

double steal_percent(const CpuTicks& a, const CpuTicks& b) {
  if (!a.known || !b.known || b.total <= a.total || b.steal < a.steal) return NAN;
  return 100.0 * double(b.steal - a.steal) / double(b.total - a.total);
}

}  // namespace gmmdiff
