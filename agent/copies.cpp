#include "agent/copies.h"

#include <set>

#include "agent/errors.h"
#include "agent/log.h"

namespace rw {
namespace {

// A copy's mtime may be this much older than the primary's and still count as the same file:
// file systems and object stores keep coarser times (FAT 2 s, S3 1 s, rsync --modify-window).
constexpr std::int64_t kMtimeSlackNs = 2000000000;

// `path` relative to `root`, or nullopt when it is not below it.
std::optional<std::string> RelativeTo(const std::string& root, const std::string& path) {
  const std::string r = TrimSlashes(root), p = TrimSlashes(path);
  if (r == "/") return p.size() > 1 ? std::optional<std::string>(p.substr(1)) : std::nullopt;
  if (p.size() <= r.size() + 1 || p.compare(0, r.size(), r) != 0 || p[r.size()] != '/')
    return std::nullopt;
  return p.substr(r.size() + 1);
}

std::string JoinPath(const std::string& root, const std::string& rel) {
  const std::string r = TrimSlashes(root);
  return r == "/" ? "/" + rel : r + "/" + rel;
}

// One line that changes whenever a listing does (names, sizes, mtimes, etags).
std::string Signature(const std::vector<Listing>& listings) {
  std::string s;
  for (const auto& l : listings) {
    s += l.found ? "+" : "-";
    for (const auto& o : l.objects)
      s += o.rel + ":" + std::to_string(o.size) + ":" + std::to_string(o.mtime_ns) + ":" +
           o.etag.value_or("") + ";";
    s += "|";
  }
  return s;
}

}  // namespace

BackupParts LocateBackup(const TargetConfig& target, const BackupInfo& backup) {
  for (const auto& root : target.backup.paths) {
    auto rel = RelativeTo(root, backup.path);
    if (!rel) continue;
    BackupParts parts{root, {*rel}};
    for (const std::string* extra : {&backup.globals_path, &backup.reference_path}) {
      if (extra->empty()) continue;
      if (auto r = RelativeTo(root, *extra)) parts.rels.push_back(*r);
    }
    return parts;
  }
  throw Error(ErrorKind::kUnsupported, "backup " + backup.path +
                                           " is not below any backup.path, so its copies cannot be "
                                           "found by relative path");
}

std::string CompareListings(const std::string& rel, const Listing& primary, const Listing& copy) {
  if (!copy.found) return "lacks " + rel;
  std::map<std::string, const StoredObject*> held;
  for (const auto& o : copy.objects) held[o.rel] = &o;
  for (const auto& p : primary.objects) {
    auto it = held.find(p.rel);
    if (it == held.end()) return "lacks " + p.rel;
    const StoredObject& c = *it->second;
    if (c.size != p.size)
      return p.rel + " has " + std::to_string(c.size) + " bytes, the primary " +
             std::to_string(p.size);
    if (p.etag && c.etag && *p.etag != *c.etag)
      return p.rel + " has etag " + *c.etag + ", the primary " + *p.etag;
    if (c.mtime_ns != 0 && p.mtime_ns != 0 && c.mtime_ns + kMtimeSlackNs < p.mtime_ns)
      return p.rel + " is older than the primary's (an earlier file of the same name)";
  }
  return "";
}

std::string Policy321::ToString() const {
  return std::to_string(copies) + (copies == 1 ? " copy, " : " copies, ") + std::to_string(media) +
         (media == 1 ? " medium, " : " media, ") + std::to_string(offsite) +
         " offsite (want 3, 2, 1)";
}

Policy321 Evaluate321(const std::vector<CopyState>& states) {
  Policy321 p;
  std::set<std::string> media;
  for (const auto& s : states) {
    if (!s.present) continue;
    ++p.copies;
    media.insert(s.medium);
    if (s.offsite) ++p.offsite;
  }
  p.media = static_cast<int>(media.size());
  return p;
}

std::string MediumOf(const CopyConfig& copy) {
  if (!copy.medium.empty()) return copy.medium;
  try {
    return MakeCopyLister(copy.path)->DefaultMedium();
  } catch (const Error&) {
    const std::size_t scheme = copy.path.find("://");
    if (scheme == std::string::npos) return copy.path;
    const std::string host =
        copy.path.substr(scheme + 3, copy.path.find('/', scheme + 3) - (scheme + 3));
    return copy.path.substr(0, scheme) + ":" + host;  // s3://bucket/x -> "s3:bucket"
  }
}

std::string CopiesChecker::ChecksumReason(CopyLister& primary, CopyLister& copy,
                                          const std::string& location,
                                          const std::vector<Listing>& primary_listings,
                                          const std::vector<Listing>& copy_listings,
                                          CancelToken& cancel, std::string* note) {
  const std::string psig = Signature(primary_listings);
  const std::string sig = psig + "#" + Signature(copy_listings);
  auto cached = verified_.find(location);
  if (cached != verified_.end() && cached->second.signature == sig) {
    *note = cached->second.note;
    return cached->second.reason;
  }
  if (primary_signature_ != psig) {
    primary_sums_.clear();
    primary_md5s_.clear();
    primary_signature_ = psig;
  }
  std::string reason;
  std::vector<std::string> size_only;
  if (copy.EtagIsMd5()) {
    std::map<std::string, const StoredObject*> held;
    for (const auto& l : copy_listings)
      for (const auto& o : l.objects) held[o.rel] = &o;
    for (const auto& l : primary_listings) {
      for (const auto& o : l.objects) {
        auto it = held.find(o.rel);
        if (it == held.end() || !it->second->etag) {
          size_only.push_back(o.rel);
          continue;
        }
        auto& want = primary_md5s_[o.rel];
        if (want.empty()) want = Md5Of(primary, o.rel, cancel);
        if (*it->second->etag != want) {
          reason = o.rel + " differs from the primary's (ETag " + *it->second->etag +
                   ", the primary's MD5 " + want + ")";
          break;
        }
      }
      if (!reason.empty()) break;
    }
    if (reason.empty() && !size_only.empty())
      *note =
          "compared by size only: " + size_only.front() +
          (size_only.size() > 1 ? " and " + std::to_string(size_only.size() - 1) + " more" : "") +
          (size_only.size() > 1 ? " have" : " has") +
          " an ETag that is not a plain MD5 (a multipart or encrypted upload)";
    verified_[location] = Verified{sig, reason, *note};
    return reason;
  }
  for (const auto& l : primary_listings) {
    for (const auto& o : l.objects) {
      auto& want = primary_sums_[o.rel];
      if (want.empty()) want = Sha256Of(primary, o.rel, cancel);
      const std::string got = Sha256Of(copy, o.rel, cancel);
      if (got != want) {
        reason = o.rel + " differs from the primary's (SHA-256 " + got.substr(0, 12) +
                 "..., the "
                 "primary " +
                 want.substr(0, 12) + "...)";
        break;
      }
    }
    if (!reason.empty()) break;
  }
  verified_[location] = Verified{sig, reason, ""};
  return reason;
}

std::vector<CopyState> CopiesChecker::Check(const TargetConfig& target, const BackupInfo& newest,
                                            CancelToken& cancel) {
  const BackupParts parts = LocateBackup(target, newest);
  auto primary = MakeCopyLister(parts.root, &target.backup.s3);
  std::vector<Listing> primary_listings;
  for (const auto& rel : parts.rels) primary_listings.push_back(primary->List(rel, cancel));

  std::vector<CopyState> out;
  CopyState p;
  p.location = kPrimaryLocation;
  p.path = parts.root;
  p.medium = primary->DefaultMedium();
  p.present = true;  // the newest backup was listed there
  p.newest_completed_at = newest.completed_at;
  out.push_back(p);

  std::set<std::string> still_configured;
  for (const auto& c : target.backup.copies) {
    cancel.ThrowIfCancelled();
    still_configured.insert(c.name);
    CopyState s;
    s.location = c.name;
    s.path = c.path;
    s.offsite = c.offsite;
    s.medium = MediumOf(c);
    try {
      auto lister = MakeCopyLister(c.path, &target.backup.s3);
      std::vector<Listing> listings;
      for (std::size_t i = 0; i < parts.rels.size() && s.reason.empty(); ++i) {
        listings.push_back(lister->List(parts.rels[i], cancel));
        s.reason = CompareListings(parts.rels[i], primary_listings[i], listings.back());
      }
      if (s.reason.empty() && target.backup.verify_checksum)
        s.reason =
            ChecksumReason(*primary, *lister, c.name, primary_listings, listings, cancel, &s.note);
      if (!s.reason.empty())
        s.reason = "does not hold the newest backup " + newest.id + ": " + s.reason;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCancelled) throw;
      s.reason = "cannot be read: " + std::string(e.what());
    }
    s.present = s.reason.empty();
    out.push_back(s);
  }
  for (auto it = verified_.begin(); it != verified_.end();)
    it = still_configured.count(it->first) ? std::next(it) : verified_.erase(it);
  return out;
}

const CopyConfig* FirstOffsiteCopy(const TargetConfig& target) {
  for (const auto& c : target.backup.copies)
    if (c.offsite) return &c;
  return nullptr;
}

TargetConfig CopyTarget(const TargetConfig& target, const CopyConfig& copy) {
  TargetConfig t = target;
  t.backup.paths = {copy.path};
  t.backup.copies.clear();
  return t;
}

BackupInfo BackupForDrill(const TargetConfig& target, const BackupInfo& backup,
                          CancelToken& cancel) {
  if (target.drill.from != DrillFrom::kOffsite) return backup;
  const CopyConfig* copy = FirstOffsiteCopy(target);
  if (copy == nullptr)
    throw Error(ErrorKind::kConfig,
                "drill.from = \"offsite\" but no backup.copies entry is offsite");
  const std::string named = "offsite copy \"" + copy->name + "\" (" + copy->path + ")";
  const BackupParts parts = LocateBackup(target, backup);
  std::string reason;
  try {
    auto primary = MakeCopyLister(parts.root, &target.backup.s3);
    auto lister = MakeCopyLister(copy->path, &target.backup.s3);
    for (const auto& rel : parts.rels) {
      reason = CompareListings(rel, primary->List(rel, cancel), lister->List(rel, cancel));
      if (!reason.empty()) break;
    }
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCancelled) throw;
    throw Error(ErrorKind::kIo, named + " cannot be read: " + e.what());
  }
  if (!reason.empty())
    throw Error(ErrorKind::kIo, named + " does not hold backup " + backup.id + ": " + reason +
                                    "; the drill restores from it (drill.from = \"offsite\"), "
                                    "never from the primary instead");
  BackupInfo b = backup;
  auto move = [&](std::string& path) {
    if (path.empty()) return;
    if (auto rel = RelativeTo(parts.root, path)) path = JoinPath(copy->path, *rel);
  };
  move(b.path);
  move(b.globals_path);
  move(b.reference_path);
  b.location = copy->name;
  return b;
}

}  // namespace rw
