#include "tests/support/webhook_receiver.h"

#include <sys/socket.h>

#include <chrono>

namespace rw::test {

WebhookReceiver::WebhookReceiver(Policy policy) : policy_(std::move(policy)) {
  // SO_REUSEADDR only (cpp-httplib's default adds SO_REUSEPORT: RECIPES.md).
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_.set_read_timeout(5, 0);
  server_.Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
    Request r{req.path, req.body, req.get_header_value("Authorization"),
              std::chrono::steady_clock::now()};
    std::size_t n;
    {
      std::lock_guard<std::mutex> lk(mu_);
      n = requests_.size();
      requests_.push_back(r);
    }
    const int status = policy_ ? policy_(n, r) : 200;
    if (status == 0) {
      std::unique_lock<std::mutex> lk(mu_);
      ++hanging_;
      cv_.wait_for(lk, std::chrono::seconds(60), [this] { return released_; });
      --hanging_;
      res.status = 200;
      return;
    }
    res.status = status;
    // Echo the credentials on a refusal, as some proxies do: they must not reach the agent's log.
    res.set_content(status >= 400 ? "refused " + r.authorization : "ok", "text/plain");
  });
  port_ = server_.bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
}

WebhookReceiver::~WebhookReceiver() {
  Release();
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<WebhookReceiver::Request> WebhookReceiver::requests() const {
  std::lock_guard<std::mutex> lk(mu_);
  return requests_;
}

std::size_t WebhookReceiver::count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return requests_.size();
}

std::size_t WebhookReceiver::CountContaining(const std::string& needle) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::size_t n = 0;
  for (const auto& r : requests_) n += r.body.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

void WebhookReceiver::Release() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

bool WebhookReceiver::hanging() const {
  std::lock_guard<std::mutex> lk(mu_);
  return hanging_ > 0;
}

}  // namespace rw::test
