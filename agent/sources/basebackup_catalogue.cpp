#include "agent/sources/basebackup_catalogue.h"

#include <dirent.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "agent/errors.h"
#include "agent/json.h"
#include "agent/pg/process.h"
#include "agent/units.h"

namespace rw::basebackup {

namespace {

using JVal = json::Value;

std::string Sha256Hex(const char* data, std::size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr) != 1)
    throw Error(ErrorKind::kIo, "SHA-256 failed");
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::optional<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct StatInfo {
  bool exists = false;
  bool is_dir = false;
  std::uint64_t size = 0;
  double mtime = 0;
};
StatInfo StatPath(const std::string& p) {
  StatInfo s;
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return s;
  s.exists = true;
  s.is_dir = S_ISDIR(st.st_mode);
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime = static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1e9;
  return s;
}

thread_local std::uint64_t g_tree_bytes = 0;
int AddFileSize(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F) g_tree_bytes += static_cast<std::uint64_t>(st->st_size);
  return 0;
}
std::uint64_t TreeBytes(const std::string& dir) {
  g_tree_bytes = 0;
  ::nftw(dir.c_str(), AddFileSize, 32, FTW_PHYS);
  return g_tree_bytes;
}

std::optional<std::string> HexDecode(const std::string& hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (!std::isxdigit(static_cast<unsigned char>(hex[i])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
      return std::nullopt;
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// One member of a tar archive, read with tar itself (which stops at its first occurrence).
std::optional<std::string> TarMember(const std::string& archive, Compression c,
                                     const std::string& member, const CatalogueOptions& opt,
                                     CancelToken* cancel, std::string* why) {
  ProcessSpec spec;
  spec.argv = {"tar", "-xOf", archive, "--occurrence=1"};
  if (c != Compression::kNone) {
    spec.argv.push_back("-I");
    spec.argv.push_back(DecompressorFor(c));
  }
  spec.argv.push_back(member);
  spec.timeout = opt.tool_timeout;
  ProcessResult r = RunProcess(spec, cancel);
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while reading " + archive);
  if (!r.ok()) {
    if (why) *why = "cannot read " + member + " from " + archive + ": " + r.Summary();
    return std::nullopt;
  }
  return r.out;
}

// Walks an uncompressed tar's headers (seeking over the data): "" when it ends with the
// end-of-archive block right where the members end, else what is wrong.
std::string TarWalk(const std::string& path, std::uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot be read";
  std::uint64_t off = 0;
  std::string h(512, '\0');
  for (std::size_t members = 0;; ++members) {
    if (off + 512 > size) return "is truncated after " + std::to_string(members) + " members";
    in.seekg(static_cast<std::streamoff>(off));
    in.read(&h[0], 512);
    if (in.gcount() != 512) return "cannot be read";
    if (std::all_of(h.begin(), h.end(), [](char c) { return c == 0; }))
      return members == 0 ? "is empty" : "";
    unsigned sum = 0;
    for (std::size_t i = 0; i < 512; ++i)
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    unsigned stored = 0;
    try {
      stored = static_cast<unsigned>(std::stoul(h.substr(148, 8), nullptr, 8));
    } catch (const std::exception&) {
      return "has a corrupt header at byte " + std::to_string(off);
    }
    if (stored != sum) return "has a corrupt header at byte " + std::to_string(off);
    std::uint64_t len = 0;
    if (static_cast<unsigned char>(h[124]) & 0x80) {  // base-256 (files over 8 GiB)
      for (std::size_t i = 125; i < 136; ++i) len = (len << 8) | static_cast<unsigned char>(h[i]);
    } else {
      std::string field = h.substr(124, 12);
      field = field.substr(0, field.find('\0'));
      try {
        len = field.find_first_of("01234567") == std::string::npos ? 0
                                                                   : std::stoull(field, nullptr, 8);
      } catch (const std::exception&) {
        return "has a corrupt header at byte " + std::to_string(off);
      }
    }
    off += 512 + (len + 511) / 512 * 512;
    if (off > size) return "is truncated inside member " + std::to_string(members + 1);
  }
}

struct TarFind {
  std::string path;
  Compression compression = Compression::kNone;
};
std::optional<TarFind> FindTar(const std::string& dir, const std::string& stem) {
  const std::pair<const char*, Compression> kinds[] = {{".tar", Compression::kNone},
                                                       {".tar.gz", Compression::kGzip},
                                                       {".tar.lz4", Compression::kLz4},
                                                       {".tar.zst", Compression::kZstd}};
  for (const auto& [ext, c] : kinds) {
    std::string p = dir + "/" + stem + ext;
    StatInfo s = StatPath(p);
    if (s.exists && !s.is_dir) return TarFind{p, c};
  }
  return std::nullopt;
}

// `.backup` history files in the archive, by start LSN (uncompressed ones only).
std::map<wal::Lsn, wal::BackupHistory> BackupHistories(const std::string& archive) {
  std::map<wal::Lsn, wal::BackupHistory> out;
  if (archive.empty()) return out;
  DIR* d = ::opendir(archive.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    wal::ArchiveName an = wal::ParseArchiveName(e->d_name);
    if (an.kind == wal::ArchiveFileKind::kBackupHistory && an.compression.empty())
      names.push_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& n : names) {
    auto text = ReadAll(archive + "/" + n);
    if (!text) continue;
    if (auto h = wal::ParseBackupHistory(*text)) out[h->start_lsn] = *h;
  }
  return out;
}

// The newest mtime of `dir`, its entries, and the entries of its base/ and pg_wal/ (where a plain
// pg_basebackup creates files as it goes; a tar one grows base.tar in `dir`). A few stats, no walk.
double NewestWrite(const std::string& dir) {
  double newest = StatPath(dir).mtime;
  for (const char* sub : {"", "/base", "/pg_wal"}) {
    const std::string d = dir + sub;
    DIR* h = ::opendir(d.c_str());
    if (!h) continue;
    while (dirent* de = ::readdir(h)) {
      const std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      newest = std::max(newest, StatPath(d + "/" + n).mtime);
    }
    ::closedir(h);
  }
  return newest;
}

BaseBackupEntry ReadOne(const std::string& dir, const std::string& id, const CatalogueOptions& opt,
                        const std::map<wal::Lsn, wal::BackupHistory>& histories,
                        CancelToken* cancel) {
  BaseBackupEntry e;
  e.id = id;
  e.path = dir;
  e.stop_time = StatPath(dir).mtime;  // until the manifest's mtime is known
  // The first reason found is kept; the reading goes on so the entry carries what is known.
  auto incomplete = [&](const std::string& why) {
    if (e.problem.empty()) e.problem = why;
  };
  if (IsInFlightName(id)) incomplete("its name '" + id + "' marks a copy in progress");
  if (!StatPath(dir + "/backup_manifest").exists) {
    const double quiet_since = NowUnix() - opt.running_quiet_seconds;
    e.running = NewestWrite(dir) > quiet_since;
  }

  // Layout.
  auto base_tar = FindTar(dir, "base");
  const bool plain = StatPath(dir + "/PG_VERSION").exists || StatPath(dir + "/global").is_dir;
  if (base_tar) {
    e.layout = Layout::kTar;
    e.base_file = base_tar->path;
    e.compression = base_tar->compression;
    if (auto w = FindTar(dir, "pg_wal")) {
      e.wal_file = w->path;
      e.wal_compression = w->compression;
    }
  } else if (!plain) {
    incomplete("not a pg_basebackup output: no base.tar and no PG_VERSION");
    return e;
  }

  // On-disk size.
  if (e.layout == Layout::kPlain) {
    e.size_bytes = TreeBytes(dir);
  } else if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* de = ::readdir(d)) {
      StatInfo s = StatPath(dir + "/" + de->d_name);
      if (s.exists && !s.is_dir) e.size_bytes += s.size;
    }
    ::closedir(d);
  }

  // backup_label and PG_VERSION.
  std::optional<std::string> label_text, version_text;
  std::string why;
  if (e.layout == Layout::kPlain) {
    label_text = ReadAll(dir + "/backup_label");
    if (!label_text) why = "cannot read backup_label";
    version_text = ReadAll(dir + "/PG_VERSION");
  } else {
    label_text = TarMember(e.base_file, e.compression, "backup_label", opt, cancel, &why);
    if (label_text)
      version_text = TarMember(e.base_file, e.compression, "PG_VERSION", opt, cancel, nullptr);
  }
  if (version_text) {
    try {
      e.server_major = std::stoi(Trim(*version_text));
    } catch (const std::exception&) {
      e.server_major = 0;
    }
  }
  std::optional<BackupLabel> label;
  if (label_text) {
    label = ParseBackupLabel(*label_text);
    if (!label) why = "backup_label is unreadable";
  }
  if (label) {
    e.label = label->label;
    e.backup_from = label->from;
    e.checkpoint_lsn = label->checkpoint_lsn;
    e.start_time = label->start_time;
    e.start_lsn = label->start_lsn;
    e.start_timeline = label->start_timeline;
  }

  // The manifest.
  const std::string mpath = dir + "/backup_manifest";
  StatInfo ms = StatPath(mpath);
  if (!ms.exists) {
    incomplete("no backup_manifest (half-copied, or taken with --no-manifest)");
    return e;
  }
  e.stop_time = ms.mtime;
  auto text = ReadAll(mpath);
  std::string err;
  std::optional<Manifest> m = text ? ParseManifest(*text, &err) : std::nullopt;
  if (!m) {
    incomplete("backup_manifest is not a complete manifest: " +
               (text ? err : std::string("cannot read it")));
    return e;
  }
  e.file_count = m->files.size();
  for (const auto& f : m->files) {
    e.data_bytes += f.size;
    if (e.checksum_algorithm.empty() && !f.checksum_algorithm.empty())
      e.checksum_algorithm = f.checksum_algorithm;
  }
  e.wal_ranges = m->wal_ranges;
  if (m->wal_ranges.empty()) {
    incomplete("backup_manifest has no WAL-Ranges");
    return e;
  }
  {
    const ManifestWalRange* first = &m->wal_ranges.front();
    const ManifestWalRange* last = first;
    for (const auto& r : m->wal_ranges) {
      if (r.start < first->start) first = &r;
      if (r.end > last->end) last = &r;
    }
    e.start_lsn = first->start;
    e.start_timeline = first->timeline;
    e.stop_lsn = last->end;
    e.stop_timeline = last->timeline;
  }
  if (!label) {
    incomplete(why);
    return e;
  }
  if (label->start_lsn != e.start_lsn || label->start_timeline != e.start_timeline) {
    incomplete("backup_label (start " + wal::FormatLsn(label->start_lsn) + " timeline " +
               std::to_string(label->start_timeline) + ") does not match backup_manifest (start " +
               wal::FormatLsn(e.start_lsn) + " timeline " + std::to_string(e.start_timeline) + ")");
    return e;
  }
  auto h = histories.find(e.start_lsn);
  if (h != histories.end() && h->second.stop_time) {
    e.stop_time = *h->second.stop_time;
    e.stop_time_exact = true;
  }
  if (!e.problem.empty()) return e;

  // Are the files there (plain) / do the archives end where they should (uncompressed tar)?
  if (e.layout == Layout::kPlain) {
    for (const auto& f : m->files) {
      if (cancel) cancel->ThrowIfCancelled();
      StatInfo s = StatPath(dir + "/" + f.path);
      if (!s.exists) {
        incomplete(f.path + " is listed in backup_manifest but missing");
        return e;
      }
      if (s.size != f.size) {
        incomplete(f.path + " has " + std::to_string(s.size) + " bytes, backup_manifest says " +
                   std::to_string(f.size));
        return e;
      }
    }
    if (DIR* d = ::opendir((dir + "/pg_wal").c_str())) {
      while (dirent* de = ::readdir(d))
        if (wal::ParseArchiveName(de->d_name).kind == wal::ArchiveFileKind::kSegment)
          e.wal_included = true;
      ::closedir(d);
    }
  } else {
    for (const auto& f : {std::make_pair(e.base_file, e.compression),
                          std::make_pair(e.wal_file, e.wal_compression)}) {
      if (f.first.empty() || f.second != Compression::kNone) continue;
      std::string bad = TarWalk(f.first, StatPath(f.first).size);
      if (!bad.empty()) {
        incomplete(f.first.substr(f.first.find_last_of('/') + 1) + " " + bad);
        return e;
      }
    }
    e.wal_included = !e.wal_file.empty();
    // Tablespaces come as <oid>.tar beside base.tar: not handled by this source.
    if (DIR* d = ::opendir(dir.c_str())) {
      std::string ts;
      while (dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        auto dot = n.find(".tar");
        if (dot != std::string::npos && dot > 0 &&
            std::all_of(n.begin(), n.begin() + static_cast<long>(dot), ::isdigit))
          ts = n;
      }
      ::closedir(d);
      if (!ts.empty()) {
        incomplete("tablespace archive " + ts + " is not supported");
        return e;
      }
    }
  }
  e.complete = true;
  return e;
}

}  // namespace

std::string FormatName(Layout layout, Compression compression) {
  if (layout == Layout::kPlain) return "plain";
  switch (compression) {
    case Compression::kGzip:
      return "tar.gz";
    case Compression::kLz4:
      return "tar.lz4";
    case Compression::kZstd:
      return "tar.zst";
    case Compression::kNone:
      break;
  }
  return "tar";
}

std::string DecompressorFor(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kLz4:
      return "lz4";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "";
}

std::optional<Manifest> ParseManifest(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<Manifest> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (text.empty()) return fail("empty file");
  JVal root;
  std::string why;
  bool truncated = false;
  if (!json::Parse(text, &root, &why, &truncated))
    return fail(truncated ? "truncated (" + why + ")" : "not JSON: " + why);
  if (root.t != JVal::T::kObj) return fail("not a JSON object");
  Manifest m;
  const JVal* ver = root.Get("PostgreSQL-Backup-Manifest-Version");
  if (!ver || ver->t != JVal::T::kNum) return fail("no PostgreSQL-Backup-Manifest-Version");
  m.version = std::atoi(ver->s.c_str());
  if (m.version != 1 && m.version != 2) return fail("unsupported manifest version " + ver->s);
  const JVal* sum = root.Get("Manifest-Checksum");
  if (!sum || sum->t != JVal::T::kStr) return fail("no Manifest-Checksum");
  m.checksum = Lower(sum->s);

  // The checksum covers everything up to and including the newline before the last line, as
  // pg_verifybackup computes it.
  if (text.back() != '\n') return fail("truncated (the last line has no newline)");
  std::size_t last_nl = text.size() - 1;
  std::size_t prev_nl = last_nl == 0 ? std::string::npos : text.rfind('\n', last_nl - 1);
  if (prev_nl == std::string::npos) return fail("expected at least 2 lines");
  if (Sha256Hex(text.data(), prev_nl + 1) != m.checksum)
    return fail("Manifest-Checksum does not match its content");

  const JVal* files = root.Get("Files");
  if (!files || files->t != JVal::T::kArr) return fail("no Files array");
  m.files.reserve(files->a.size());
  for (const auto& f : files->a) {
    ManifestFile mf;
    const JVal* p = f.Get("Path");
    const JVal* ep = f.Get("Encoded-Path");
    if (p && p->t == JVal::T::kStr) {
      mf.path = p->s;
    } else if (ep && ep->t == JVal::T::kStr) {
      auto d = HexDecode(ep->s);
      if (!d) return fail("bad Encoded-Path");
      mf.path = *d;
    } else {
      return fail("a file without Path");
    }
    const JVal* size = f.Get("Size");
    if (!size || size->t != JVal::T::kNum) return fail("file " + mf.path + " has no Size");
    try {
      mf.size = std::stoull(size->s);
    } catch (const std::exception&) {
      return fail("file " + mf.path + " has a bad Size");
    }
    if (const JVal* a = f.Get("Checksum-Algorithm"); a && a->t == JVal::T::kStr)
      mf.checksum_algorithm = a->s;
    m.files.push_back(std::move(mf));
  }
  const JVal* ranges = root.Get("WAL-Ranges");
  if (!ranges || ranges->t != JVal::T::kArr) return fail("no WAL-Ranges array");
  for (const auto& r : ranges->a) {
    const JVal* tl = r.Get("Timeline");
    const JVal* s = r.Get("Start-LSN");
    const JVal* e = r.Get("End-LSN");
    if (!tl || tl->t != JVal::T::kNum || !s || s->t != JVal::T::kStr || !e || e->t != JVal::T::kStr)
      return fail("a WAL range without Timeline, Start-LSN and End-LSN");
    auto sl = wal::ParseLsn(s->s), el = wal::ParseLsn(e->s);
    if (!sl || !el) return fail("a WAL range with a bad LSN");
    m.wal_ranges.push_back(
        ManifestWalRange{static_cast<std::uint32_t>(std::stoul(tl->s)), *sl, *el});
  }
  return m;
}

std::optional<BackupLabel> ParseBackupLabel(const std::string& text) {
  auto h = wal::ParseBackupHistory(text);
  if (!h) return std::nullopt;
  BackupLabel l;
  l.start_lsn = h->start_lsn;
  l.checkpoint_lsn = h->checkpoint_lsn;
  l.start_time = h->start_time;
  l.label = h->label;
  l.start_timeline = h->start_timeline;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = Trim(line.substr(colon + 2));
    if (key == "BACKUP METHOD") l.method = value;
    if (key == "BACKUP FROM") l.from = value;
    if (key == "START WAL LOCATION") {
      auto f = value.find("(file ");
      if (f != std::string::npos) l.start_segment = value.substr(f + 6, 24);
    }
  }
  if (l.start_timeline == 0) return std::nullopt;
  return l;
}

bool IsInFlightName(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* s : {".partial", ".part", ".tmp", ".inprogress", ".incomplete"}) {
    std::size_t n = std::strlen(s);
    if (name.size() > n && name.compare(name.size() - n, n, s) == 0) return true;
  }
  return false;
}

const BaseBackupEntry* BaseBackupCatalogue::Latest() const {
  for (auto it = backups.rbegin(); it != backups.rend(); ++it)
    if (it->complete) return &*it;
  return nullptr;
}

const BaseBackupEntry* BaseBackupCatalogue::OldestComplete() const {
  for (const auto& b : backups)
    if (b.complete) return &b;
  return nullptr;
}

std::size_t BaseBackupCatalogue::CompleteCount() const {
  return static_cast<std::size_t>(
      std::count_if(backups.begin(), backups.end(), [](const auto& b) { return b.complete; }));
}

BaseBackupEntry ReadBaseBackup(const std::string& dir, const CatalogueOptions& options,
                               CancelToken* cancel) {
  std::string id = dir.substr(dir.find_last_of('/') + 1);
  return ReadOne(dir, id, options, BackupHistories(options.wal_archive), cancel);
}

BaseBackupCatalogue ReadCatalogue(const std::string& path, const CatalogueOptions& options,
                                  CancelToken* cancel) {
  DIR* d = ::opendir(path.c_str());
  if (!d)
    throw Error(ErrorKind::kIo,
                "cannot read the base backup directory " + path + ": " + std::strerror(errno));
  std::vector<std::string> names;
  BaseBackupCatalogue cat;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (StatPath(path + "/" + n).is_dir)
      names.push_back(n);
    else
      cat.notes.push_back(n + ": not a directory, skipped");
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  auto histories = BackupHistories(options.wal_archive);
  for (const auto& n : names) {
    if (cancel) cancel->ThrowIfCancelled();
    cat.backups.push_back(ReadOne(path + "/" + n, n, options, histories, cancel));
  }
  // Oldest first: by start time (backup_label), else the manifest's or the directory's mtime,
  // then start LSN.
  std::stable_sort(cat.backups.begin(), cat.backups.end(),
                   [](const BaseBackupEntry& a, const BaseBackupEntry& b) {
                     double ta = a.start_time.value_or(a.stop_time);
                     double tb = b.start_time.value_or(b.stop_time);
                     if (ta != tb) return ta < tb;
                     return a.start_lsn < b.start_lsn;
                   });
  return cat;
}

}  // namespace rw::basebackup
