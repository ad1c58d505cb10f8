#pragma once
// A small HTTP receiver for notification tests: a cpp-httplib server on 127.0.0.1 and a random
// port that records every POST (path, body, Authorization header) and answers with what the test
// says (status, or a hang until released). Stopped and joined by its destructor.
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rw::test {

class WebhookReceiver {
 public:
  struct Request {
    std::string path;
    std::string body;
    std::string authorization;
    std::chrono::steady_clock::time_point at;  // when it arrived
  };
  // Decides the answer to the n-th request (0-based): an HTTP status; 0 = hang until Release().
  using Policy = std::function<int(std::size_t n, const Request&)>;

  explicit WebhookReceiver(Policy policy = {});
  ~WebhookReceiver();
  int port() const { return port_; }
  std::string url(const std::string& path = "") const;
  std::vector<Request> requests() const;
  std::size_t count() const;
  // Requests whose body contains `needle`.
  std::size_t CountContaining(const std::string& needle) const;
  // Ends every hang (now and later).
  void Release();
  // True while a request hangs (the policy answered 0).
  bool hanging() const;

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  Policy policy_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  bool released_ = false;
  int hanging_ = 0;
};

}  // namespace rw::test
