#include "exporters/metrics_cache.h"

#include <zlib.h>

#include <stdexcept>

namespace rw {

MetricsCache::MetricsCache(std::function<std::string()> render) : render_(std::move(render)) {}

void MetricsCache::Refresh(std::uint64_t tag) {
  std::lock_guard<std::mutex> rl(refresh_mu_);
  auto page = std::make_shared<RenderedMetrics>();
  page->tag = tag;
  page->text = render_();
  page->gzip = GzipCompress(page->text);
  page->serial = ++serial_;
  std::lock_guard<std::mutex> lk(mu_);
  page_ = std::move(page);
}

std::shared_ptr<const RenderedMetrics> MetricsCache::Get() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (page_) return page_;
  }
  Refresh();
  std::lock_guard<std::mutex> lk(mu_);
  return page_;
}

std::shared_ptr<const RenderedMetrics> MetricsCache::Peek() {
  std::lock_guard<std::mutex> lk(mu_);
  return page_;
}

std::string GzipCompress(const std::string& data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const auto written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate failed");
  out.resize(written);
  return out;
}

std::string GzipDecompress(const std::string& data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw std::runtime_error("gunzip: inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(buf, sizeof buf - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gunzip: not a whole gzip stream");
  return out;
}

}  // namespace rw
