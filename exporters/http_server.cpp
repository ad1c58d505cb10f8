#include "exporters/http_server.h"

#include <httplib.h>

#include "agent/errors.h"
#include "agent/log.h"
#include "exporters/metrics_exporter.h"

namespace rw {

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

HttpServer::HttpServer(std::string listen, HttpHandlers handlers)
    : listen_(std::move(listen)), handlers_(std::move(handlers)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Start() {
  if (!SplitListen(listen_, &host_, &port_))
    throw Error(ErrorKind::kConfig, "bad listen address '" + listen_ + "'");
  server_ = std::make_unique<httplib::Server>();
  auto& s = *server_;
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(100);
  HttpHandlers h = handlers_;
  s.Get("/metrics", [h](const httplib::Request&, httplib::Response& res) {
    res.set_content(h.metrics(), kMetricsContentType);
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
  int bound = port_ == 0 ? s.bind_to_any_port(host_) : (s.bind_to_port(host_, port_) ? port_ : -1);
  if (bound <= 0)
    throw Error(ErrorKind::kConfig, "cannot listen on " + listen_,
                "is another process using the port?");
  port_ = bound;
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
}

}  // namespace rw
