#include "agent/sources/basebackup_verify.h"

#include <sys/stat.h>

#include <sstream>

#include "agent/errors.h"

namespace rw::basebackup {

namespace {

std::string BaseName(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

bool IsFile(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void ThrowIfStopped(const ProcessResult& r, const std::string& what) {
  if (r.cancelled) throw Error(ErrorKind::kCancelled, "cancelled while " + what);
  if (r.timed_out) throw Error(ErrorKind::kTimeout, what + " timed out");
}

// tar's own complaint, without its "Exiting with failure status" epilogue.
std::string TarCause(const ProcessResult& r) {
  std::istringstream in(r.err);
  std::string line, first;
  while (std::getline(in, line)) {
    if (line.find("Exiting with failure status") != std::string::npos) continue;
    if (line.rfind("tar: ", 0) == 0) line = line.substr(5);
    if (!line.empty()) {
      first = line;
      break;
    }
  }
  return first.empty() ? r.Summary() : first;
}

std::string ExtractOne(const std::string& archive, Compression c, const std::string& into,
                       const VerifyOptions& opt, CancelToken* cancel) {
  ProcessSpec spec;
  spec.argv = {"tar", "-xf", archive, "-C", into, "--no-same-owner", "-p"};
  if (c != Compression::kNone) {
    spec.argv.push_back("-I");
    spec.argv.push_back(DecompressorFor(c));
  }
  spec.run_as = opt.run_as;
  spec.timeout = opt.timeout;
  if (opt.extract_commands) opt.extract_commands->push_back(spec.argv);
  ProcessResult r = RunProcess(spec, cancel);
  ThrowIfStopped(r, "extracting " + BaseName(archive));
  if (!r.ok()) return BaseName(archive) + ": cannot extract: " + TarCause(r);
  return "";
}

// All the backup's WAL segments (16 MiB segments) are in `dir`, uncompressed.
bool HoldsWal(const BaseBackupEntry& b, const std::string& dir) {
  if (dir.empty() || b.wal_ranges.empty()) return false;
  for (const auto& r : b.wal_ranges) {
    for (std::uint64_t s = wal::SegmentNo(r.start, wal::kDefaultSegmentSize);
         s <= wal::SegmentNo(r.end, wal::kDefaultSegmentSize); ++s)
      if (!IsFile(dir + "/" + wal::SegmentName(r.timeline, s, wal::kDefaultSegmentSize)))
        return false;
  }
  return true;
}

// The first of the backup's WAL segments that `dir` lacks in every form (plain or compressed as
// the restore command reads it), with the range it belongs to; "" when none is missing.
std::string MissingWal(const BaseBackupEntry& b, const std::string& dir) {
  for (const auto& r : b.wal_ranges) {
    for (std::uint64_t s = wal::SegmentNo(r.start, wal::kDefaultSegmentSize);
         s <= wal::SegmentNo(r.end, wal::kDefaultSegmentSize); ++s) {
      const std::string name = wal::SegmentName(r.timeline, s, wal::kDefaultSegmentSize);
      bool found = false;
      for (const char* suffix : {"", ".gz", ".zst", ".lz4", ".bz2", ".xz"})
        found = found || IsFile(dir + "/" + name + suffix);
      if (!found)
        return "WAL segment " + name + " is missing from the archive " + dir +
               " (the backup needs it: its WAL runs from " + wal::FormatLsn(r.start) + " to " +
               wal::FormatLsn(r.end) + ")";
    }
  }
  return "";
}

}  // namespace

std::string VerifyReason(const std::string& output, std::vector<std::string>* problems) {
  std::istringstream in(output);
  std::string line;
  std::vector<std::string> errors;
  while (std::getline(in, line)) {
    for (const char* prefix : {"pg_verifybackup: error: ", "pg_waldump: error: ",
                               "pg_waldump: fatal: ", "pg_verifybackup: fatal: "}) {
      if (line.rfind(prefix, 0) == 0) {
        errors.push_back(line.substr(std::char_traits<char>::length(prefix)));
        break;
      }
    }
  }
  if (problems) *problems = errors;
  if (errors.empty()) return CauseLine(output);
  // pg_waldump's complaint says more than "WAL parsing failed for timeline 1": lead with it.
  std::string first = errors.front();
  std::string out = first;
  if (errors.size() > 1)
    out += " (and " + std::to_string(errors.size() - 1) + " more problem" +
           (errors.size() > 2 ? "s" : "") + ")";
  return out;
}

std::string ExtractTarBackup(const BaseBackupEntry& b, const std::string& dir,
                             const VerifyOptions& opt, CancelToken* cancel) {
  if (b.layout != Layout::kTar) return "not a tar backup";
  if (!IsDir(dir)) return "extract directory " + dir + " does not exist";
  std::string why = ExtractOne(b.base_file, b.compression, dir, opt, cancel);
  if (!why.empty()) return why;
  if (!b.wal_file.empty()) {
    const std::string wal_dir = dir + "/pg_wal";
    if (!IsDir(wal_dir)) MakeDirs(wal_dir, 0700, opt.run_as);
    why = ExtractOne(b.wal_file, b.wal_compression, wal_dir, opt, cancel);
    if (!why.empty()) return why;
  }
  return "";
}

VerifyResult VerifyBaseBackup(const BaseBackupEntry& b, const VerifyOptions& opt,
                              CancelToken* cancel) {
  VerifyResult res;
  if (!b.complete) {
    res.reason = b.id + ": incomplete: " + b.problem;
    return res;
  }
  if (b.server_major != 0 && opt.tools.major != 0 && b.server_major != opt.tools.major) {
    res.reason = b.id + ": the backup is PostgreSQL " + std::to_string(b.server_major) +
                 ", the tools in " + opt.tools.bin_dir + " are " + std::to_string(opt.tools.major);
    return res;
  }
  res.verified_dir = b.path;
  if (b.layout == Layout::kTar) {
    if (opt.extract_dir.empty()) throw Error(ErrorKind::kConfig, "no extract_dir for a tar backup");
    auto t0 = std::chrono::steady_clock::now();
    std::string why = ExtractTarBackup(b, opt.extract_dir, opt, cancel);
    res.extract_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!why.empty()) {
      res.reason = why;
      res.problems = {why};
      return res;
    }
    res.verified_dir = opt.extract_dir;
  }

  ProcessSpec spec;
  spec.argv = {opt.tools.Path("pg_verifybackup"), "-m", b.path + "/backup_manifest"};
  // Its own pg_wal (-X stream, or -X fetch, whose WAL is inside base.tar), else the archive.
  if (b.wal_included || HoldsWal(b, res.verified_dir + "/pg_wal")) {
    res.wal_parsed = true;
    res.wal_source = "backup";
  } else if (HoldsWal(b, opt.wal_archive)) {
    spec.argv.push_back("--wal-directory=" + opt.wal_archive);
    res.wal_parsed = true;
    res.wal_source = opt.wal_archive;
  } else if (std::string missing = MissingWal(b, opt.wal_archive);
             !opt.wal_archive.empty() && !missing.empty()) {
    // Without it the copy never becomes consistent: a finding about the backup, said up front.
    res.reason = missing;
    return res;
  } else {
    spec.argv.push_back("--no-parse-wal");
    res.wal_note = opt.wal_archive.empty()
                       ? "WAL not parsed: the backup has no pg_wal and no WAL archive was given"
                       : "WAL not parsed: the backup has no pg_wal and the archive " +
                             opt.wal_archive +
                             " does not hold all its segments uncompressed (see the WAL "
                             "continuity check)";
  }
  spec.argv.push_back(res.verified_dir);
  spec.run_as = opt.run_as;
  spec.timeout = opt.timeout;
  spec.capture_limit = 4 * 1024 * 1024;
  res.verify_command = spec.argv;
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult r = RunProcess(spec, cancel);
  res.verify_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ThrowIfStopped(r, "running pg_verifybackup on " + b.id);
  if (r.ok()) {
    res.ok = true;
    return res;
  }
  res.reason = VerifyReason(r.err + "\n" + r.out, &res.problems);
  if (res.reason.empty()) res.reason = "pg_verifybackup: " + r.Summary();
  return res;
}

}  // namespace rw::basebackup
