// The shared monitor pool (agent/runtime/monitor_pool.h): periodic turns, never two turns of one
// job at once, due order, kicks, cancel and wait, growth when every worker is stuck, retirement,
// stop. Every wait is bounded.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/runtime/monitor_pool.h"
#include "tests/support/pg_fixture.h"

using namespace rw;
using namespace std::chrono_literals;
using test::Eventually;

namespace {

// A gate a job blocks on until the test opens it (bounded: opens itself after 10 s).
class Gate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> lk(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait_for(lk, 10s, [this] { return open_; });
    --waiting_;
  }
  void Open() {
    std::lock_guard<std::mutex> lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard<std::mutex> lk(mu_);
    return waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

MonitorPool::Options Small(int min_workers, int max_workers) {
  MonitorPool::Options o;
  o.min_workers = min_workers;
  o.max_workers = max_workers;
  o.grow_after = 50ms;
  o.idle_retire = 200ms;
  return o;
}

}  // namespace

TEST_CASE("monitor pool: a job turns periodically and never twice at once", "[unit][monitor]") {
  MonitorPool pool(Small(4, 4));
  std::atomic<int> turns{0}, inside{0}, max_inside{0};
  auto id = pool.Add([&] {
    int now = ++inside;
    int prev = max_inside.load();
    while (now > prev && !max_inside.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(5ms);
    --inside;
    ++turns;
    return Duration(1);
  });
  REQUIRE(id != 0);
  REQUIRE(Eventually([&] { return turns.load() >= 20; }, 5));
  CHECK(max_inside.load() == 1);  // 4 idle workers, still one turn at a time
  pool.Cancel(id);
  CHECK(pool.Wait({id}, std::chrono::steady_clock::now() + 5s));
  const int after = turns.load();
  std::this_thread::sleep_for(100ms);
  CHECK(turns.load() == after);  // no turn after Cancel + Wait
  CHECK(pool.jobs() == 0);
}

TEST_CASE("monitor pool: jobs start in the order they are due", "[unit][monitor]") {
  MonitorPool pool(Small(1, 1));
  std::mutex mu;
  std::vector<int> order;
  auto record = [&](int n) {
    return [&, n] {
      std::lock_guard<std::mutex> lk(mu);
      order.push_back(n);
      return Duration::zero();  // one turn only
    };
  };
  pool.Add(record(3), 300ms);
  pool.Add(record(1), 100ms);
  pool.Add(record(2), 200ms);
  REQUIRE(Eventually(
      [&] {
        std::lock_guard<std::mutex> lk(mu);
        return order.size() == 3;
      },
      5));
  CHECK(order == std::vector<int>{1, 2, 3});
  CHECK(pool.jobs() == 0);  // a job returning zero ends
}

TEST_CASE("monitor pool: a kick makes a job due now, also during its turn", "[unit][monitor]") {
  MonitorPool pool(Small(2, 2));
  std::atomic<int> turns{0};
  Gate gate;
  auto id = pool.Add(
      [&] {
        if (++turns == 2) gate.Pass();
        return Duration(std::chrono::hours(1));
      },
      std::chrono::hours(1));
  pool.Kick(id);
  REQUIRE(Eventually([&] { return turns.load() == 1; }, 5));
  pool.Kick(id);  // the second turn, which blocks in the gate
  REQUIRE(Eventually([&] { return gate.waiting() == 1; }, 5));
  pool.Kick(id, 10ms);  // during the turn: the turn after it is due 10 ms after it ends
  gate.Open();
  CHECK(Eventually([&] { return turns.load() == 3; }, 5));
}

TEST_CASE("monitor pool: Wait is bounded while a cancelled turn still runs", "[unit][monitor]") {
  MonitorPool pool(Small(2, 2));
  Gate gate;
  std::atomic<int> turns{0};
  auto id = pool.Add([&] {
    ++turns;
    gate.Pass();
    return Duration(1);
  });
  REQUIRE(Eventually([&] { return gate.waiting() == 1; }, 5));
  pool.Cancel(id);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(pool.Wait({id}, t0 + 100ms));
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  gate.Open();
  CHECK(pool.Wait({id}, std::chrono::steady_clock::now() + 5s));
  std::this_thread::sleep_for(50ms);
  CHECK(turns.load() == 1);
}

TEST_CASE("monitor pool: grows when every worker is stuck, retires idle extras",
          "[unit][monitor]") {
  // A stuck worker (a hung database) grows the pool even on a CPU-saturated host.
  const bool saturated = GENERATE(false, true);
  MonitorPool::Options o = Small(1, 3);
  o.cpu_saturated = [saturated] { return saturated; };
  MonitorPool pool(o);
  Gate gate;
  pool.Add([&] {
    gate.Pass();
    return Duration::zero();
  });
  REQUIRE(Eventually([&] { return gate.waiting() == 1; }, 5));
  std::atomic<int> other{0};
  pool.Add([&] {
    ++other;
    return Duration(20);
  });
  // The only worker is stuck: Maintain() (the agent calls it every second) adds one.
  std::this_thread::sleep_for(100ms);
  pool.Maintain();
  CHECK(Eventually([&] { return other.load() >= 3; }, 5));
  CHECK(pool.workers() >= 2);
  CHECK(pool.workers() <= 3);
  gate.Open();
  // Back to min_workers once the extra has been idle for idle_retire... but the 20 ms job keeps
  // one busy now and then; two workers at most remain and never more than max.
  CHECK(Eventually([&] { return pool.workers() <= 2; }, 5));
}

TEST_CASE(
    "monitor pool: jobs merely behind on a CPU-saturated host do not grow it; it grows once the "
    "CPUs free up",
    "[unit][monitor]") {
  MonitorPool::Options o = Small(1, 4);
  o.grow_after = 200ms;
  std::atomic<bool> saturated{true};
  std::atomic<int> asked{0};
  o.cpu_saturated = [&] {
    ++asked;
    return saturated.load();
  };
  MonitorPool pool(o);
  std::atomic<int> turns{0};
  // Sixteen 20 ms jobs due every millisecond: the one worker is always busy and the queue always
  // over 200 ms behind, but no turn lasts 200 ms (nothing is stuck).
  for (int i = 0; i < 16; ++i)
    pool.Add([&] {
      std::this_thread::sleep_for(20ms);
      ++turns;
      return Duration(1);
    });
  REQUIRE(Eventually([&] { return turns.load() >= 30; }, 10));
  std::this_thread::sleep_for(500ms);
  pool.Maintain();
  CHECK(asked.load() >= 2);  // the baseline at construction, then a look while behind
  CHECK(pool.workers() == 1);
  // The CPUs free up: the next answer (at most a second later) lets it grow.
  saturated = false;
  CHECK(Eventually(
      [&] {
        pool.Maintain();
        return pool.workers() >= 2;
      },
      10));
  CHECK(pool.workers() <= 4);
}

TEST_CASE("monitor pool: the host's CPU pressure is read from /proc/pressure/cpu",
          "[unit][monitor]") {
  auto p = ParseCpuPressure(
      "some avg10=58.89 avg60=48.58 avg300=28.29 total=678227437\n"
      "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  REQUIRE(p);
  CHECK(p->avg10 == Approx(58.89));
  CHECK(p->total_us == 678227437u);
  CHECK_FALSE(ParseCpuPressure("full avg10=12.00 avg60=0.00 avg300=0.00 total=5\n"));
  CHECK_FALSE(ParseCpuPressure("xsome avg10=12.00 avg60=0.00 avg300=0.00 total=5\n"));
  CHECK_FALSE(ParseCpuPressure("some avg10=abc avg60=0.00 avg300=0.00 total=5\n"));
  CHECK_FALSE(ParseCpuPressure("some avg10=1.00 avg60=0.00 avg300=0.00\n"));
  CHECK_FALSE(ParseCpuPressure(""));

  // The watch: the first answer from avg10, later ones from the waiting since the last call.
  test::TestDir dir("rwpsi-");
  const std::string path = dir / "cpu";
  auto write = [&](double avg10, std::uint64_t total) {
    test::WriteFile(path, "some avg10=" + std::to_string(avg10) +
                              " avg60=0.00 avg300=0.00 total=" + std::to_string(total) +
                              "\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  };
  HostCpuWatch watch(path);
  write(80, 1000);
  CHECK(watch.Saturated());  // avg10 80%
  std::this_thread::sleep_for(300ms);
  write(80, 1000 + 10000);  // 10 ms of waiting in 300 ms: the lagging avg10 is not believed
  CHECK_FALSE(watch.Saturated());
  std::this_thread::sleep_for(300ms);
  write(5, 11000 + 600000);  // 600 ms of waiting (two CPUs) in about 300 ms
  CHECK(watch.Saturated());
  CHECK_FALSE(HostCpuWatch(dir / "missing").Saturated());  // no pressure information
  // Wherever the kernel has it, the real file parses.
  std::ifstream in("/proc/pressure/cpu");
  if (in) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(ParseCpuPressure(text));
  }
}

TEST_CASE("monitor pool: an idle extra worker retires", "[unit][monitor]") {
  MonitorPool pool(Small(1, 2));
  Gate gate;
  pool.Add([&] {
    gate.Pass();
    return Duration::zero();
  });
  REQUIRE(Eventually([&] { return gate.waiting() == 1; }, 5));
  std::atomic<bool> ran{false};
  pool.Add([&] {
    ran = true;
    return Duration::zero();
  });
  std::this_thread::sleep_for(100ms);
  pool.Maintain();
  REQUIRE(Eventually([&] { return ran.load(); }, 5));
  CHECK(pool.workers() == 2);
  gate.Open();
  CHECK(Eventually([&] { return pool.workers() == 1; }, 5));
}

TEST_CASE("monitor pool: Stop ends every job and joins the workers", "[unit][monitor]") {
  MonitorPool pool(Small(2, 2));
  std::atomic<int> turns{0};
  for (int i = 0; i < 5; ++i)
    pool.Add([&] {
      ++turns;
      return Duration(5);
    });
  REQUIRE(Eventually([&] { return turns.load() >= 10; }, 5));
  CHECK(pool.Stop(std::chrono::steady_clock::now() + 5s));
  CHECK(pool.workers() == 0);
  CHECK(pool.jobs() == 0);
  CHECK(pool.Add([] { return Duration(1); }) == 0);  // nothing runs after Stop
  const int after = turns.load();
  std::this_thread::sleep_for(50ms);
  CHECK(turns.load() == after);
}

TEST_CASE("monitor pool: a job that throws is tried again later", "[unit][monitor]") {
  MonitorPool::Options o = Small(1, 1);
  MonitorPool pool(o);
  std::atomic<int> turns{0};
  pool.Add([&]() -> Duration {
    if (++turns == 1) throw std::runtime_error("boom");
    return Duration::zero();
  });
  // The retry comes 1 s later.
  CHECK(Eventually([&] { return turns.load() == 2; }, 5));
}
