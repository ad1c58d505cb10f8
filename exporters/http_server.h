#pragma once
// The agent's HTTP endpoint (cpp-httplib): /metrics, /healthz, /readyz, /api/v1/status. Handlers
// only copy what the runtime already collected; none of them touches a database. Start() binds
// (so a bad listen address fails at start-up) and serves on its own thread; Stop() is idempotent
// and may be called from any thread.
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace rw {

struct HttpHandlers {
  std::function<std::string()> metrics;      // text format
  std::function<bool()> ready;               // config loaded and first collection done
  std::function<std::string()> status_json;  // /api/v1/status
};

class HttpServer {
 public:
  HttpServer(std::string listen, HttpHandlers handlers);
  ~HttpServer();
  // Binds host:port (port 0 picks one) and starts serving. Throws Error(kConfig) when it cannot
  // bind.
  void Start();
  void Stop();
  int port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  std::string listen_, host_;
  int port_ = 0;
  HttpHandlers handlers_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Splits "host:port" ("[::1]:9847" too). Returns false on malformed input.
bool SplitListen(const std::string& listen, std::string* host, int* port);

}  // namespace rw
