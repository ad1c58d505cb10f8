#pragma once
// /metrics pre-rendered: the agent re-renders the page after the board changes (debounced) and
// every second (for the process_* families), keeping the text and its gzip side by side in one
// immutable page. A scrape takes the current page under a short lock and writes it: it never
// runs collectors, serializes or compresses, so scrapes do not wait for work and every answer is
// one whole rendering (the gzip and the text of one page are the same content). Thread-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace rw {

struct RenderedMetrics {
  std::string text;          // Prometheus text format 0.0.4
  std::string gzip;          // the same bytes, gzip-compressed
  std::uint64_t serial = 0;  // 1 for the first page, +1 per refresh
  std::uint64_t tag = 0;     // what the caller of Refresh() said the page covers (a generation)
};

class MetricsCache {
 public:
  explicit MetricsCache(std::function<std::string()> render);
  // Renders now and publishes the page (readers holding the previous one keep it). `tag`: read
  // before rendering (the agent passes the board's generation), so the page covers at least it.
  void Refresh(std::uint64_t tag = 0);
  // The newest page; renders the first one when there is none yet.
  std::shared_ptr<const RenderedMetrics> Get();
  // The newest page, or null; never renders.
  std::shared_ptr<const RenderedMetrics> Peek();

 private:
  std::function<std::string()> render_;
  std::mutex refresh_mu_;  // one render at a time, published in order
  std::mutex mu_;
  std::shared_ptr<const RenderedMetrics> page_;  // guarded by mu_
  std::uint64_t serial_ = 0;                     // guarded by refresh_mu_
};

// gzip (RFC 1952) of `data`; throws std::runtime_error on a zlib failure.
std::string GzipCompress(const std::string& data);
// The inverse (tests, and clients that want to check); throws std::runtime_error on bad input.
std::string GzipDecompress(const std::string& data);

}  // namespace rw
