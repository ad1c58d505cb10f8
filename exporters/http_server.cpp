#include "exporters/http_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "agent/errors.h"
#include "agent/log.h"
#include "exporters/metrics_cache.h"
#include "exporters/metrics_exporter.h"

namespace rw {
namespace {

// The placeholder type of a pre-compressed /metrics body while cpp-httplib decides whether to
// compress (it compresses text/*, never this); replaced by kMetricsContentType before writing.
constexpr const char* kPrecompressedType = "application/x-restorewatch-gzip";

// Whether an Accept-Encoding value accepts gzip ("gzip", "gzip;q=0.5"), not "gzip;q=0".
bool AcceptsGzip(const std::string& accept) {
  std::size_t pos = 0;
  while (pos <= accept.size()) {
    std::size_t end = accept.find(',', pos);
    if (end == std::string::npos) end = accept.size();
    std::string item = accept.substr(pos, end - pos);
    pos = end + 1;
    std::string coding = item.substr(0, item.find(';'));
    coding.erase(0, coding.find_first_not_of(" \t"));
    coding.erase(coding.find_last_not_of(" \t") + 1);
    if (coding != "gzip" && coding != "x-gzip") continue;
    auto q = item.find("q=");
    if (q != std::string::npos && std::strtod(item.c_str() + q + 2, nullptr) <= 0) return false;
    return true;
  }
  return false;
}

}  // namespace

// cpp-httplib hands every accepted connection to a TaskQueue and a worker keeps it for as long as
// the connection lives (keep-alive included). Its default pool has 8 workers, so 8 idle clients
// stalled every scrape. This pool starts a worker whenever a connection arrives and none is free
// (up to a cap), and retires workers idle for 30 s, so idle clients cost a thread each instead of
// blocking the scrape. Thread-safe.
class ElasticPool {
 public:
  explicit ElasticPool(std::size_t max_threads) : max_(max_threads) {}
  ~ElasticPool() { Shutdown(std::chrono::seconds(0)); }

  void Enqueue(std::function<void()> fn) {
    std::lock_guard<std::mutex> lk(mu_);
    ReapLocked();
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && live_ < max_) {
      const std::uint64_t id = next_id_++;
      ++live_;
      threads_.emplace(id, std::thread([this, id] { Work(id); }));
    }
    cv_.notify_one();
  }

  // Lets queued and running connections finish (cpp-httplib closes queued ones at once after
  // stop()) and joins the workers within `bound`; workers still busy after that are detached
  // and leaked() turns true (the caller must then keep the server alive).
  void Shutdown(std::chrono::steady_clock::duration bound) {
    std::unique_lock<std::mutex> lk(mu_);
    shutdown_ = true;
    cv_.notify_all();
    done_cv_.wait_for(lk, bound, [this] { return live_ == 0; });
    ReapLocked();
    for (auto& [id, t] : threads_) {
      if (t.joinable()) t.detach();
      leaked_ = true;
    }
    threads_.clear();
  }

  bool leaked() const {
    std::lock_guard<std::mutex> lk(mu_);
    return leaked_;
  }

 private:
  void Work(std::uint64_t id) {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        ++idle_;
        cv_.wait_for(lk, std::chrono::seconds(30), [this] { return !jobs_.empty() || shutdown_; });
        --idle_;
        if (jobs_.empty()) {
          // Idle for 30 s, or shutting down with nothing left: retire.
          --live_;
          exited_.push_back(id);
          done_cv_.notify_all();
          return;
        }
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        fn();
      } catch (...) {
        // cpp-httplib handles handler exceptions itself; nothing may escape a thread.
      }
    }
  }

  // Joins workers that retired (their last act was to release mu_).
  void ReapLocked() {
    for (std::uint64_t id : exited_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      if (it->second.joinable()) it->second.join();
      threads_.erase(it);
    }
    exited_.clear();
  }

  const std::size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<std::function<void()>> jobs_;
  std::map<std::uint64_t, std::thread> threads_;
  std::vector<std::uint64_t> exited_;
  std::uint64_t next_id_ = 0;
  std::size_t live_ = 0, idle_ = 0;
  bool shutdown_ = false, leaked_ = false;
};

namespace {

// What cpp-httplib sees: a thin TaskQueue it may delete, over the pool the HttpServer owns.
class PoolQueue : public httplib::TaskQueue {
 public:
  explicit PoolQueue(ElasticPool* pool) : pool_(pool) {}
  void enqueue(std::function<void()> fn) override { pool_->Enqueue(std::move(fn)); }
  void shutdown() override {
    pool_->Shutdown(std::chrono::seconds(kKeepAliveSeconds + kReadTimeoutSeconds + 1));
  }

 private:
  ElasticPool* pool_;
};

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

void JsonError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content("{\"error\":" + JsonString(message) + "}\n", "application/json");
}

}  // namespace

bool SplitListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return false;
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = listen.substr(colon + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5) return false;
  int n = std::stoi(p);
  if (n > 65535) return false;
  *host = h.empty() ? "0.0.0.0" : h;
  *port = n;
  return true;
}

HttpServer::HttpServer(std::string listen, HttpHandlers handlers, WebConfig web)
    : listen_(std::move(listen)), handlers_(std::move(handlers)), web_(std::move(web)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Start() {
  if (!SplitListen(listen_, &host_, &port_))
    throw Error(ErrorKind::kConfig, "bad listen address '" + listen_ + "'");
  if (web_.tls()) {
    auto ssl = std::make_unique<httplib::SSLServer>(web_.cert_file.c_str(), web_.key_file.c_str());
    if (!ssl->is_valid())
      throw Error(ErrorKind::kConfig,
                  "cannot load the TLS certificate " + web_.cert_file + " or key " + web_.key_file +
                      " (" + web_.path + ")",
                  "both must be PEM files and the key must match the certificate");
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (web_.auth()) auth_ = std::make_shared<BasicAuth>(web_.users);
  pool_ = std::make_shared<ElasticPool>(kMaxHttpThreads);
  auto& s = *server_;
  ElasticPool* pool = pool_.get();
  s.new_task_queue = [pool] { return new PoolQueue(pool); };
  // Exclusive bind: cpp-httplib's default sets SO_REUSEPORT, which lets a second agent bind the
  // same address and the kernel split the scrapes between the two.
  auto listen_fd = std::make_shared<int>(-1);
  s.set_socket_options([listen_fd](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    // No Nagle: cpp-httplib writes the headers and the body apart, and the body then waited for
    // the client's delayed ACK (40 ms per scrape on loopback). Accepted sockets inherit it.
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    *listen_fd = sock;
  });
  s.set_read_timeout(kReadTimeoutSeconds, 0);
  s.set_write_timeout(kWriteTimeoutSeconds, 0);
  s.set_keep_alive_timeout(kKeepAliveSeconds);
  s.set_keep_alive_max_count(100);
  std::shared_ptr<BasicAuth> auth = auth_;
  s.set_pre_routing_handler([auth](const httplib::Request& req, httplib::Response& res) {
    if (!auth || auth->Allows(req.get_header_value("Authorization")))
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Basic realm=\"restorewatch\", charset=\"UTF-8\"");
    res.set_content("unauthorized\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  HttpHandlers h = handlers_;
  s.Get("/metrics", [h](const httplib::Request& req, httplib::Response& res) {
    if (!h.metrics_page) return res.set_content(h.metrics(), kMetricsContentType);
    std::shared_ptr<const RenderedMetrics> page = h.metrics_page();
    res.set_header("Vary", "Accept-Encoding");
    // Which rendering this is (1, 2, ...): two answers with the same number are the same page.
    res.set_header("X-Restorewatch-Render", std::to_string(page->serial));
    if (AcceptsGzip(req.get_header_value("Accept-Encoding"))) {
      // Already compressed: a type cpp-httplib does not compress again; the post-routing handler
      // puts the metrics type back once the body is final.
      res.set_header("Content-Encoding", "gzip");
      res.set_content(page->gzip, kPrecompressedType);
    } else {
      res.set_content(page->text, kMetricsContentType);
    }
  });
  s.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.get_header_value("Content-Type") != kPrecompressedType) return;
    res.headers.erase("Content-Type");
    res.set_header("Content-Type", kMetricsContentType);
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/readyz", [h](const httplib::Request&, httplib::Response& res) {
    if (h.ready()) {
      res.set_content("ready\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("not ready\n", "text/plain");
    }
  });
  s.Get("/api/v1/status", [h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.status_json(), "application/json");
  });
  s.Get(R"(/api/v1/targets/([^/]+)/history)", [h](const httplib::Request& req,
                                                  httplib::Response& res) {
    int last = 20;
    if (req.has_param("last")) {
      const std::string v = req.get_param_value("last");
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1 || std::stoi(v) > 500)
        return JsonError(res, 400, "last must be a number from 1 to 500");
      last = std::stoi(v);
    }
    auto body = h.history_json ? h.history_json(req.matches[1], last) : std::nullopt;
    if (!body) return JsonError(res, 404, "no target named '" + req.matches[1].str() + "'");
    res.set_content(*body, "application/json");
  });
  s.Get(R"(/api/v1/targets/([^/]+)/ledger)",
        [h](const httplib::Request& req, httplib::Response& res) {
          auto body = h.ledger_json ? h.ledger_json(req.matches[1]) : std::nullopt;
          if (!body) return JsonError(res, 404, "no target named '" + req.matches[1].str() + "'");
          res.set_content(*body, "application/json");
        });
  s.Get(R"(/api/v1/targets/([^/]+)/runbook)",
        [h](const httplib::Request& req, httplib::Response& res) {
          if (!h.runbook) return JsonError(res, 404, "no runbook here");
          HttpAnswer a = h.runbook(req.matches[1]);
          res.status = a.status;
          res.set_content(a.body, a.content_type);
        });
  s.Post(R"(/api/v1/targets/([^/]+)/drill)",
         [h](const httplib::Request& req, httplib::Response& res) {
           if (!h.drill_request)
             return JsonError(res, 403,
                              "the drill API is disabled (set agent.enable_drill_api = true and "
                              "configure basic_auth_users in agent.web_config_file)");
           HttpAnswer a = h.drill_request(req.matches[1]);
           res.status = a.status;
           res.set_content(a.body, "application/json");
         });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "<html><head><title>restorewatch</title></head><body><h1>restorewatch</h1>"
        "<p><a href=\"/metrics\">metrics</a> &middot; <a href=\"/api/v1/status\">status</a> "
        "&middot; "
        "<a href=\"/healthz\">healthz</a> &middot; <a "
        "href=\"/readyz\">readyz</a></p></body></html>",
        "text/html");
  });
  s.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LogError("http handler failed", {{"path", req.path}, {"error", what}});
        res.status = 500;
        res.set_content("internal error\n", "text/plain");
      });
  errno = 0;
  int bound = port_ == 0 ? s.bind_to_any_port(host_) : (s.bind_to_port(host_, port_) ? port_ : -1);
  if (bound <= 0) {
    const int err = errno;
    throw Error(ErrorKind::kConfig,
                "cannot listen on " + listen_ + (err ? std::string(": ") + std::strerror(err) : ""),
                err == EADDRINUSE ? "another process (another restorewatch?) is listening there"
                                  : "is the address local and the port free?");
  }
  port_ = bound;
  // cpp-httplib listens with a backlog of 5: a burst of connections (idle clients reconnecting)
  // overflows it, the kernel drops SYNs, and a scrape arriving then waits a 1 s SYN retransmit.
  // listen() again on the bound socket only raises the backlog.
  if (*listen_fd >= 0) ::listen(*listen_fd, kListenBacklog);
  if (!IsLoopbackHost(host_) && !(web_.tls() && web_.auth()))
    LogWarn("listening on a non-loopback address without TLS and basic auth",
            {{"address", listen_},
             {"tls", web_.tls() ? "on" : "off"},
             {"basic_auth", web_.auth() ? "on" : "off"},
             {"hint",
              "anyone who can reach it can read /metrics and the API; set agent.web_config_file "
              "or listen on 127.0.0.1"}});
  thread_ = std::thread([this] {
    try {
      server_->listen_after_bind();
    } catch (const std::exception& e) {
      LogError("http server stopped", {{"error", e.what()}});
    }
  });
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  if (pool_ && pool_->leaked()) {
    // A connection still inside a handler past the bound: its worker keeps using the server and
    // the pool, so both stay allocated until the process exits (it is about to).
    LogWarn("http connections still open at shutdown; leaving them to the process exit");
    (void)server_.release();
    new std::shared_ptr<ElasticPool>(pool_);
    pool_.reset();
  }
}

}  // namespace rw
