// Test helper: the ranks of a job as threads of one process (ThreadComm, a dist::Comm), so that the
// collective protocols above MPI (collective(), gather_blocks, sum_counts, SharedNpyOut, the
// sweep's dispatcher) are tested in the unit suite, under the sanitizers, without mpirun. The
// collectives exchange every rank's bytes through one hub; messages go to per-rank mailboxes.
#pragma once
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dist/comm.hpp"

namespace gmmdiff::test {

class ThreadHub {
 public:
  explicit ThreadHub(int n) : n_(n), slots_(n), mail_(n) {}

  /// Every rank's bytes, in rank order, once every rank has given its own.
  std::vector<std::string> exchange(int rank, const std::string& mine) {
    std::unique_lock<std::mutex> lk(m_);
    const uint64_t gen = generation_;
    slots_[rank] = mine;
    if (++arrived_ == n_) {
      result_ = slots_;
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return generation_ != gen; });
    }
    return result_;
  }
  void post(int to, dist::Comm::Message m) {
    std::lock_guard<std::mutex> g(m_);
    mail_[to].push_back(std::move(m));
    cv_.notify_all();
  }
  dist::Comm::Message wait_mail(int rank) {
    std::unique_lock<std::mutex> lk(m_);
    cv_.wait(lk, [&] { return !mail_[rank].empty(); });
    dist::Comm::Message m = std::move(mail_[rank].front());
    mail_[rank].pop_front();
    return m;
  }
  std::optional<dist::Comm::Message> try_mail(int rank) {
    std::lock_guard<std::mutex> g(m_);
    if (mail_[rank].empty()) return std::nullopt;
    dist::Comm::Message m = std::move(mail_[rank].front());
    mail_[rank].pop_front();
    return m;
  }
  int size() const { return n_; }

 private:
  int n_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<std::deque<dist::Comm::Message>> mail_;
};

class ThreadComm final : public dist::Comm {
 public:
  ThreadComm(ThreadHub& hub, int rank) : hub_(hub), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return hub_.size(); }
  int local_rank() const override { return rank_; }
  int local_size() const override { return hub_.size(); }
  std::string kind() const override { return "mpi"; }
  void barrier() override { hub_.exchange(rank_, ""); }
  void broadcast(std::string& bytes, int root) override { bytes = hub_.exchange(rank_, bytes)[root]; }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    std::vector<std::string> all = hub_.exchange(rank_, mine);
    return rank_ == root ? all : std::vector<std::string>();
  }
  void sum_exact(uint64_t* values, std::size_t count) override {
    const std::vector<std::string> all =
        hub_.exchange(rank_, std::string(reinterpret_cast<const char*>(values), count * sizeof(uint64_t)));
    for (std::size_t i = 0; i < count; ++i) values[i] = 0;
    for (const auto& a : all)
      for (std::size_t i = 0; i < count; ++i) {
        uint64_t v;
        std::memcpy(&v, a.data() + i * sizeof v, sizeof v);
        values[i] += v;
      }
  }
  void send(int to, int tag, const std::string& bytes) override { hub_.post(to, Message{rank_, tag, bytes}); }
  Message receive() override { return hub_.wait_mail(rank_); }
  std::optional<Message> poll() override { return hub_.try_mail(rank_); }
  [[noreturn]] void abort(int code) override {
    throw std::logic_error("ThreadComm::abort(" + std::to_string(code) + ") on rank " + std::to_string(rank_));
  }

 private:
  ThreadHub& hub_;
  int rank_;
};

/// Runs f(comm) on n thread-ranks at once; returns what each rank threw (null when nothing).
inline std::vector<std::exception_ptr> run_ranks(int n, const std::function<void(dist::Comm&)>& f) {
  ThreadHub hub(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadComm comm(hub, r);
      try {
        f(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

}  // namespace gmmdiff::test
