#include "agent/sources/s3_source.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/pg/process.h"
#include "agent/sources/basebackup_catalogue.h"
#include "agent/sources/basebackup_source.h"
#include "agent/sources/fetch_dir.h"
#include "agent/sources/pg_dump_discovery.h"
#include "agent/sources/pg_dump_source.h"
#include "agent/units.h"
#include "agent/wal_archive.h"

namespace rw {
namespace {

using Clock = std::chrono::steady_clock;

bool Matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// `name` as an fnmatch pattern matching only itself.
std::string Literal(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string FormatBytes(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1 << 20));
  return buf;
}

// Downloads `key` of `bucket` to `dest`, handed to run_as, as is every directory made for it.
std::uint64_t Download(const S3Client& client, const Environment& env, const std::string& bucket,
                       const std::string& key, const std::string& dest, CancelToken& cancel) {
  for (std::size_t slash = dest.find('/', 1); slash != std::string::npos;
       slash = dest.find('/', slash + 1)) {
    const std::string dir = dest.substr(0, slash);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) MakeDirs(dir, 0700, env.run_as);  // chowns this level
  }
  const std::uint64_t n = client.GetToFile(bucket, key, dest, cancel);
  if (env.run_as && chown(dest.c_str(), env.run_as->uid, env.run_as->gid) != 0)
    throw Error(ErrorKind::kIo, "cannot hand " + dest + " to " + env.run_as->user);
  return n;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class S3PgDumpSource : public BackupSource {
 public:
  S3PgDumpSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target), client_(target.backup.s3) {
    std::string why;
    if (target.backup.paths.size() != 1 || !ParseS3Url(target.backup.paths[0], &loc_, &why))
      throw Error(ErrorKind::kConfig,
                  why.empty() ? "an s3:// backup.path must be the only path" : why);
  }

  std::string type() const override { return "pg_dump"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    Scan s = DoScan(cancel);
    BackupCatalogue c;
    for (const auto& b : s.backups) c.Add("logical", b);
    c.notes = s.notes;
    if (s.running > 0) c.running["logical"] = s.running;
    return c;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    Scan s = DoScan(cancel);
    const BackupInfo* n = pgdump::SelectNewest(s.backups);
    if (n == nullptr) {
      std::string msg = "no backup matches '" + target_.backup.pattern + "' in " + loc_.Url();
      for (std::size_t i = 0; i < s.notes.size(); ++i)
        msg += (i ? "; " : " (") + s.notes[i] + (i + 1 == s.notes.size() ? ")" : "");
      throw Error(ErrorKind::kBadInput, msg);
    }
    return *n;
  }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override;

 private:
  struct Scan {
    std::vector<BackupInfo> backups;
    std::vector<std::string> notes;
    std::size_t running = 0;
    std::string globals_key;
  };

  Scan DoScan(CancelToken& cancel) {
    Scan s;
    const auto objects = client_.List(loc_.bucket, loc_.ListPrefix(), cancel);
    s.backups = S3DumpBackups(objects, loc_, target_.backup.pattern, target_.backup.globals_pattern,
                              &s.notes, &s.running, &s.globals_key);
    std::lock_guard<std::mutex> lk(mu_);
    objects_ = objects;
    return s;
  }

  // Downloads `rel` (a key below the prefix) to `dir`/`rel`; returns its size.
  std::uint64_t Fetch(const std::string& rel, const std::string& dir, CancelToken& cancel) const {
    return Download(client_, env_, loc_.bucket, loc_.Key(rel), dir + "/" + rel, cancel);
  }

  const Environment& env_;
  const TargetConfig target_;
  S3Location loc_;
  S3Client client_;
  std::mutex mu_;
  std::vector<S3Object> objects_;  // the last listing (keys of a directory dump to fetch)
};

RestoredCopy S3PgDumpSource::Restore(const BackupInfo& backup, SandboxHost& host,
                                     const RestoreOptions& options, CancelToken& cancel) {
  if (options.begin_stage) options.begin_stage("fetch");
  if (options.progress) options.progress->Step("download from " + loc_.Url());
  const auto t0 = Clock::now();
  // The keys to fetch: the dump file, or every key of a directory dump, from a fresh listing.
  std::vector<std::string> rels;
  const std::string dir_prefix = loc_.Key(backup.id) + "/";
  std::string globals_rel;
  {
    const auto objects = client_.List(loc_.bucket, loc_.ListPrefix(), cancel);
    std::vector<std::string> notes;
    std::size_t running = 0;
    std::string globals_key;
    S3DumpBackups(objects, loc_, target_.backup.pattern, target_.backup.globals_pattern, &notes,
                  &running, &globals_key);
    if (!globals_key.empty()) globals_rel = globals_key.substr(loc_.ListPrefix().size());
    for (const auto& o : objects) {
      if (o.key == loc_.Key(backup.id))
        rels.push_back(backup.id);
      else if (o.key.compare(0, dir_prefix.size(), dir_prefix) == 0)
        rels.push_back(o.key.substr(loc_.ListPrefix().size()));
    }
  }
  if (rels.empty())
    throw Error(ErrorKind::kIo, "backup " + loc_.Url() + "/" + backup.id +
                                    " is gone from the bucket (deleted since it was listed)");
  FetchDir dir(env_.work_dir, target_.name, env_.run_as, "s3-fetch");
  std::uint64_t bytes = 0;
  for (const auto& rel : rels) bytes += Fetch(rel, dir.path(), cancel);
  if (!globals_rel.empty()) bytes += Fetch(globals_rel, dir.path(), cancel);
  const double fetch_s = std::chrono::duration<double>(Clock::now() - t0).count();
  LogInfo("downloaded a backup from S3", {{"target", target_.name},
                                          {"backup", loc_.Url() + "/" + backup.id},
                                          {"bytes", std::to_string(bytes)},
                                          {"seconds", std::to_string(fetch_s)}});

  // The restore proper is the pg_dump source's own, on the downloaded copy.
  TargetConfig local = target_;
  local.backup.paths = {dir.path()};
  local.backup.pattern = Literal(backup.id);
  local.backup.globals_pattern = globals_rel.empty() ? "" : Literal(globals_rel);
  local.backup.settle = Duration::zero();  // complete once downloaded
  local.backup.copies.clear();
  auto source = MakePgDumpSource(env_, local);
  BackupInfo fetched = source->Latest(cancel);
  fetched.id = backup.id;
  fetched.location = backup.location;
  if (options.begin_stage) options.begin_stage("restore");
  RestoredCopy copy = source->Restore(fetched, host, options, cancel);
  copy.not_run.erase(std::remove_if(copy.not_run.begin(), copy.not_run.end(),
                                    [](const auto& n) { return n.first == "fetch"; }),
                     copy.not_run.end());
  copy.stages.insert(copy.stages.begin(),
                     SubStage{"fetch", "s3 download", fetch_s,
                              "downloaded " + loc_.Url() + "/" + backup.id + " (" +
                                  FormatBytes(bytes) + ", " + std::to_string(rels.size()) +
                                  (rels.size() == 1 ? " object" : " objects") + ")"});
  if (!copy.summary.empty()) copy.summary = "downloaded from S3, " + copy.summary;
  return copy;
}

// The directories initdb makes in a data directory (PostgreSQL 10 to 17), parents first.
const char* const kDataDirectories[] = {"global",
                                        "base",
                                        "pg_wal",
                                        "pg_wal/archive_status",
                                        "pg_commit_ts",
                                        "pg_dynshmem",
                                        "pg_notify",
                                        "pg_serial",
                                        "pg_snapshots",
                                        "pg_subtrans",
                                        "pg_twophase",
                                        "pg_multixact",
                                        "pg_multixact/members",
                                        "pg_multixact/offsets",
                                        "pg_replslot",
                                        "pg_tblspc",
                                        "pg_stat",
                                        "pg_stat_tmp",
                                        "pg_xact",
                                        "pg_logical",
                                        "pg_logical/snapshots",
                                        "pg_logical/mappings"};

class S3BasebackupSource : public BackupSource {
 public:
  S3BasebackupSource(const Environment& env, const TargetConfig& target)
      : env_(env), target_(target), client_(target.backup.s3) {
    std::string why;
    if (target.backup.paths.size() != 1 || !ParseS3Url(target.backup.paths[0], &loc_, &why))
      throw Error(ErrorKind::kConfig,
                  why.empty() ? "an s3:// backup.path must be the only path" : why);
    if (IsS3Url(target.backup.wal_archive) && !ParseS3Url(target.backup.wal_archive, &wal_, &why))
      throw Error(ErrorKind::kConfig, why);
  }
  std::string type() const override { return "basebackup"; }

  BackupCatalogue Catalogue(CancelToken& cancel) override {
    BackupCatalogue c;
    std::vector<std::string> notes;
    std::size_t running = 0;
    for (const auto& b : Backups(cancel, &notes, &running)) c.Add("full", b);
    c.notes = notes;
    if (running > 0) c.running["full"] = running;
    return c;
  }

  BackupInfo Latest(CancelToken& cancel) override {
    std::vector<std::string> notes;
    std::size_t running = 0;
    const auto all = Backups(cancel, &notes, &running);
    if (all.empty()) {
      std::string msg = "no complete base backup (a NAME/ with backup_manifest) in " + loc_.Url();
      for (std::size_t i = 0; i < notes.size(); ++i)
        msg += (i ? "; " : " (") + notes[i] + (i + 1 == notes.size() ? ")" : "");
      throw Error(ErrorKind::kBadInput, msg);
    }
    return *std::max_element(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.completed_at != b.completed_at ? a.completed_at < b.completed_at : a.id < b.id;
    });
  }

  bool WantsSourcePoint() const override { return target_.drill.recovery_target == "snapshot"; }

  RestoredCopy Restore(const BackupInfo& backup, SandboxHost& host, const RestoreOptions& options,
                       CancelToken& cancel) override {
    if (target_.backup.wal_archive.empty())
      throw Error(ErrorKind::kConfig, "backup.wal_archive is required for type \"basebackup\"");
    if (options.begin_stage) options.begin_stage("fetch");
    if (options.progress) options.progress->Step("download from " + loc_.Url());
    const auto t0 = Clock::now();
    const std::string dir_prefix = loc_.Key(backup.id) + "/";
    std::vector<std::string> keys;
    for (const auto& o : client_.List(loc_.bucket, dir_prefix, cancel)) keys.push_back(o.key);
    if (keys.empty())
      throw Error(ErrorKind::kIo, "backup " + loc_.Url() + "/" + backup.id +
                                      " is gone from the bucket (deleted since it was listed)");
    FetchDir dir(env_.work_dir, target_.name, env_.run_as, "s3-fetch");
    const std::string backups = dir.path() + "/backups", wal_dir = dir.path() + "/wal";
    std::uint64_t bytes = 0;
    for (const auto& k : keys)
      bytes += Download(client_, env_, loc_.bucket, k,
                        backups + "/" + k.substr(loc_.ListPrefix().size()), cancel);
    // An object store keeps no empty directory: a plain backup's empty ones (pg_notify,
    // pg_replslot, ...) are made again, as initdb makes them, or the server refuses to start.
    const std::string data = backups + "/" + backup.id;
    struct stat pv {};
    if (::stat((data + "/PG_VERSION").c_str(), &pv) == 0)
      for (const char* d : kDataDirectories) {
        struct stat st {};
        if (::stat((data + "/" + d).c_str(), &st) != 0) MakeDirs(data + "/" + d, 0700, env_.run_as);
      }
    std::size_t wal_count = 0;
    TargetConfig local = target_;
    if (!wal_.bucket.empty()) {
      // The WAL the recovery needs, from the backup's start segment (backup_label of a plain
      // backup; a tar backup's label is inside base.tar: then the whole archive).
      std::string start;
      if (auto label = basebackup::ParseBackupLabel(
              ReadSmallFile(backups + "/" + backup.id + "/backup_label")))
        start = wal::SegmentName(label->start_timeline,
                                 wal::SegmentNo(label->start_lsn, wal::kDefaultSegmentSize),
                                 wal::kDefaultSegmentSize);
      MakeDirs(wal_dir, 0700, env_.run_as);
      const auto objects = client_.List(wal_.bucket, wal_.ListPrefix(), cancel);
      for (const auto& k : WalKeysNeeded(objects, wal_.ListPrefix(), start)) {
        bytes += Download(client_, env_, wal_.bucket, k,
                          wal_dir + "/" + k.substr(wal_.ListPrefix().size()), cancel);
        ++wal_count;
      }
      local.backup.wal_archive = wal_dir;
    }
    const double fetch_s = std::chrono::duration<double>(Clock::now() - t0).count();
    LogInfo("downloaded a base backup from S3", {{"target", target_.name},
                                                 {"backup", loc_.Url() + "/" + backup.id},
                                                 {"wal_files", std::to_string(wal_count)},
                                                 {"bytes", std::to_string(bytes)}});
    local.backup.paths = {backups};
    local.backup.copies.clear();
    auto source = MakeBasebackupSource(env_, local);
    BackupInfo fetched = source->Latest(cancel);
    fetched.location = backup.location;
    RestoredCopy copy = source->Restore(fetched, host, options, cancel);
    copy.stages.insert(
        copy.stages.begin(),
        SubStage{"fetch", "s3 download", fetch_s,
                 "downloaded " + loc_.Url() + "/" + backup.id + " (" + FormatBytes(bytes) + ", " +
                     std::to_string(keys.size()) + " objects" +
                     (wal_.bucket.empty()
                          ? std::string()
                          : " and " + std::to_string(wal_count) + " WAL files from " + wal_.Url()) +
                     ")"});
    if (!copy.summary.empty()) copy.summary = "downloaded from S3, " + copy.summary;
    return copy;
  }

 private:
  std::vector<BackupInfo> Backups(CancelToken& cancel, std::vector<std::string>* notes,
                                  std::size_t* running) const {
    struct Dir {
      std::uint64_t size = 0;
      double first = 0, manifest = 0;
      bool has_manifest = false, tar = false;
    };
    std::map<std::string, Dir> dirs;
    const std::string base = loc_.ListPrefix();
    for (const auto& o : client_.List(loc_.bucket, base, cancel)) {
      const std::string rel = o.key.substr(base.size());
      const std::size_t slash = rel.find('/');
      if (slash == std::string::npos) continue;
      Dir& d = dirs[rel.substr(0, slash)];
      const std::string file = rel.substr(slash + 1);
      d.size += o.size;
      d.first = d.first == 0 ? o.last_modified : std::min(d.first, o.last_modified);
      if (file == "backup_manifest") {
        d.has_manifest = true;
        d.manifest = o.last_modified;
      }
      d.tar = d.tar || file.compare(0, 8, "base.tar") == 0;
    }
    const double quiet_since = NowUnix() - BackupCatalogue::kRunningQuietSeconds;
    std::vector<BackupInfo> out;
    for (const auto& [name, d] : dirs) {
      if (!d.has_manifest) {
        notes->push_back(name +
                         ": no backup_manifest (being written, or not a pg_basebackup "
                         "output)");
        if (d.first > quiet_since) ++*running;
        continue;
      }
      BackupInfo b;
      b.id = name;
      b.kind = "full";
      b.tool = "pg_basebackup";
      b.format = d.tar ? "tar" : "plain";
      b.path = loc_.Url() + "/" + name;
      b.size_bytes = d.size;
      b.started_at = d.first;
      b.completed_at = d.manifest;
      out.push_back(std::move(b));
    }
    return out;
  }

  const Environment& env_;
  const TargetConfig target_;
  S3Location loc_, wal_;
  S3Client client_;
};

}  // namespace

std::vector<std::string> WalKeysNeeded(const std::vector<S3Object>& objects,
                                       const std::string& list_prefix,
                                       const std::string& start_segment) {
  std::vector<std::string> out;
  for (const auto& o : objects) {
    if (o.key.compare(0, list_prefix.size(), list_prefix) != 0) continue;
    const std::string name = o.key.substr(list_prefix.size());
    if (name.find('/') != std::string::npos) continue;
    const wal::ArchiveName a = wal::ParseArchiveName(name);
    switch (a.kind) {
      case wal::ArchiveFileKind::kHistory:
      case wal::ArchiveFileKind::kBackupHistory:
        out.push_back(o.key);
        break;
      case wal::ArchiveFileKind::kSegment:
      case wal::ArchiveFileKind::kPartial:
        // log/seg: the name's last 16 hex digits order segments across timelines.
        if (start_segment.size() != 24 || name.substr(8, 16) >= start_segment.substr(8, 16))
          out.push_back(o.key);
        break;
      case wal::ArchiveFileKind::kOther:
        break;
    }
  }
  return out;
}

std::vector<BackupInfo> S3DumpBackups(const std::vector<S3Object>& objects, const S3Location& loc,
                                      const std::string& pattern,
                                      const std::string& globals_pattern,
                                      std::vector<std::string>* notes, std::size_t* running,
                                      std::string* globals_key) {
  const std::string base = loc.ListPrefix();
  const double quiet_since = NowUnix() - BackupCatalogue::kRunningQuietSeconds;
  struct Dir {
    std::uint64_t size = 0;
    double newest = 0;
    bool toc = false;
  };
  std::map<std::string, Dir> dirs;
  std::vector<BackupInfo> out;
  double globals_time = -1;
  globals_key->clear();
  // A dump found under `rel`: its time is the object's LastModified (the header's, once fetched).
  auto Dump = [&](const std::string& rel, std::uint64_t size, double at) {
    BackupInfo b;
    b.id = rel;
    b.kind = "logical";
    b.tool = "pg_dump";
    b.path = loc.Url() + "/" + rel;
    b.size_bytes = size;
    b.started_at = b.completed_at = at;
    return b;
  };
  for (const auto& o : objects) {
    if (o.key.compare(0, base.size(), base) != 0) continue;
    const std::string rel = o.key.substr(base.size());
    const std::size_t slash = rel.find('/');
    if (slash != std::string::npos) {  // below a "directory": a -Fd dump's file, maybe
      const std::string name = rel.substr(0, slash);
      if (!Matches(pattern, name)) continue;
      Dir& d = dirs[name];
      d.size += o.size;
      d.newest = std::max(d.newest, o.last_modified);
      d.toc = d.toc || rel.substr(slash + 1) == "toc.dat";
      continue;
    }
    if (!globals_pattern.empty() && Matches(globals_pattern, rel)) {
      if (o.last_modified > globals_time ||
          (o.last_modified == globals_time && o.key > *globals_key)) {
        globals_time = o.last_modified;
        *globals_key = o.key;
      }
      continue;
    }
    if (!Matches(pattern, rel) || pgdump::IsReferenceName(rel)) continue;
    if (pgdump::IsInFlightName(rel)) {
      notes->push_back(rel + ": skipped, a temporary name (being written)");
      if (o.last_modified > quiet_since) ++*running;
      continue;
    }
    out.push_back(Dump(rel, o.size, o.last_modified));
  }
  for (const auto& [name, d] : dirs) {
    if (pgdump::IsInFlightName(name)) continue;
    if (!d.toc) {
      notes->push_back(name + ": skipped, a directory without toc.dat");
      if (d.newest > quiet_since) ++*running;
      continue;
    }
    out.push_back(Dump(name, d.size, d.newest));
    out.back().format = "directory";
  }
  if (!globals_key->empty())
    for (auto& b : out) b.globals_path = "s3://" + loc.bucket + "/" + *globals_key;
  return out;
}

std::unique_ptr<BackupSource> MakeS3PgDumpSource(const Environment& env,
                                                 const TargetConfig& target) {
  return std::make_unique<S3PgDumpSource>(env, target);
}

std::unique_ptr<BackupSource> MakeS3BasebackupSource(const Environment& env,
                                                     const TargetConfig& target) {
  return std::make_unique<S3BasebackupSource>(env, target);
}

}  // namespace rw
