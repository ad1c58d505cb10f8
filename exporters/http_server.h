#pragma once
// The agent's HTTP endpoint (cpp-httplib): /metrics, /healthz, /readyz, /api/v1/status,
// /api/v1/targets/NAME/history, /api/v1/targets/NAME/runbook, /api/v1/targets/NAME/ledger and POST
// /api/v1/targets/NAME/drill. Handlers only copy what the
// runtime already collected (or, for drill, queue a request); none of them touches a database.
//
// Start() binds exclusively (SO_REUSEADDR only, never SO_REUSEPORT: a second agent on the same
// address fails at start instead of sharing the scrapes) and serves on its own thread; Stop() is
// idempotent, bounded, and may be called from any thread.
//
// Idle clients cannot starve a scrape: connections are served by an elastic pool of up to
// kMaxHttpThreads threads (one per open connection, created on demand, retired after 30 s idle),
// an idle keep-alive connection is closed after kKeepAliveSeconds and a request must arrive
// within kReadTimeoutSeconds per read. With a WebConfig, the server speaks only TLS and/or
// requires basic auth on every path (see exporters/web_config.h), /healthz included: as in
// exporter-toolkit, there is no unauthenticated path, and a probe can send the credentials.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "exporters/web_config.h"

namespace httplib {
class Server;
}

namespace rw {

class ElasticPool;
struct RenderedMetrics;

constexpr int kMaxHttpThreads = 256;  // concurrent connections served; more wait in a queue
constexpr int kKeepAliveSeconds = 2;  // an idle connection holds a thread at most this long
constexpr int kReadTimeoutSeconds = 2;
constexpr int kWriteTimeoutSeconds = 5;
constexpr int kListenBacklog = 1024;  // pending connections the kernel queues before accept

// A JSON answer of an API handler.
struct HttpAnswer {
  int status = 200;
  std::string body;  // JSON, unless content_type says otherwise
  std::string content_type = "application/json";
};

struct HttpHandlers {
  std::function<std::string()> metrics;  // text format
  // The pre-rendered page (exporters/metrics_cache.h); when set, /metrics serves it (its gzip
  // when the client accepts gzip) and `metrics` is not called.
  std::function<std::shared_ptr<const RenderedMetrics>()> metrics_page;
  std::function<bool()> ready;               // config loaded and first collection done
  std::function<std::string()> status_json;  // /api/v1/status
  // GET /api/v1/targets/NAME/history?last=N; nullopt: no such target (404).
  std::function<std::optional<std::string>(const std::string& target, int last)> history_json;
  // POST /api/v1/targets/NAME/drill; unset: the drill API is disabled (403).
  std::function<HttpAnswer(const std::string& target)> drill_request;
  // GET /api/v1/targets/NAME/runbook: the Markdown runbook (exporters/runbook.h).
  std::function<HttpAnswer(const std::string& target)> runbook;
  // GET /api/v1/targets/NAME/ledger: the verification ledger (agent/ledger.h); nullopt: no such
  // target (404).
  std::function<std::optional<std::string>(const std::string& target)> ledger_json;
};

class HttpServer {
 public:
  HttpServer(std::string listen, HttpHandlers handlers, WebConfig web = {});
  ~HttpServer();
  // Binds host:port (port 0 picks one) and starts serving. Throws Error(kConfig) when it cannot
  // bind (address in use, by another restorewatch for instance) or load the TLS files. Logs a
  // warning when the address is not loopback and TLS or basic auth is missing.
  void Start();
  void Stop();
  int port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  std::string listen_, host_;
  int port_ = 0;
  HttpHandlers handlers_;
  WebConfig web_;
  std::shared_ptr<BasicAuth> auth_;
  std::shared_ptr<ElasticPool> pool_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Splits "host:port" ("[::1]:9847" too). Returns false on malformed input.
bool SplitListen(const std::string& listen, std::string* host, int* port);

}  // namespace rw
