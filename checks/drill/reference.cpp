#include "checks/drill/reference.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/errors.h"
#include "agent/json.h"
#include "agent/log.h"
#include "agent/pg/pg_conn.h"
#include "agent/units.h"
#include "checks/drill/catalog.h"
#include "checks/drill/table_scan.h"

namespace rw {
namespace {

constexpr const char* kFormatName = "restorewatch-reference";
constexpr const char* kCacheKey = "reference";

using JVal = json::Value;
using json::PutString;

[[noreturn]] void Bad(const std::string& why) { throw Error(ErrorKind::kBadInput, why); }

const JVal& Field(const JVal& obj, const char* key, JVal::T type, const std::string& where) {
  const JVal* v = obj.Get(key);
  if (!v) Bad(where + "missing \"" + key + "\"");
  if (v->t != type) {
    static const char* names[] = {"null",     "a boolean", "a number",
                                  "a string", "an array",  "an object"};
    Bad(where + "\"" + key + "\" must be " + names[static_cast<int>(type)]);
  }
  return *v;
}

std::string Str(const JVal& obj, const char* key, const std::string& where = {}) {
  return Field(obj, key, JVal::T::kStr, where).s;
}

std::int64_t Int(const JVal& obj, const char* key, const std::string& where = {}) {
  const std::string& t = Field(obj, key, JVal::T::kNum, where).s;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (errno != 0 || !end || *end != '\0' || v < 0)
    Bad(where + "\"" + key + "\" must be a non-negative integer, not " + t);
  return v;
}

bool IsDecimal(const std::string& s) {
  std::size_t i = s.size() > 1 && s[0] == '-' ? 1 : 0;
  if (i >= s.size()) return false;
  return s.find_first_not_of("0123456789", i) == std::string::npos;
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string Hex(const unsigned char* d, unsigned n) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += k[d[i] >> 4];
    out += k[d[i] & 15];
  }
  return out;
}

// SHA-256 of one file, streamed.
DumpFileHash HashFile(const std::string& path, const std::string& name) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(errno));
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), nullptr) != 1) {
    if (md) EVP_MD_CTX_free(md);
    close(fd);
    throw Error(ErrorKind::kIo, "cannot start SHA-256");
  }
  DumpFileHash h;
  h.name = name;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      EVP_MD_CTX_free(md);
      close(fd);
      throw Error(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    EVP_DigestUpdate(md, buf.data(), static_cast<std::size_t>(n));
    h.size += static_cast<std::uint64_t>(n);
  }
  close(fd);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, out, &len);
  EVP_MD_CTX_free(md);
  h.sha256 = Hex(out, len);
  return h;
}

void ListFiles(const std::string& dir, const std::string& rel, std::vector<std::string>* out,
               int depth = 0) {
  if (depth > 8) return;
  DIR* d = opendir(dir.c_str());
  if (!d) throw Error(ErrorKind::kIo, "cannot read " + dir + ": " + std::strerror(errno));
  while (struct dirent* e = readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    const std::string p = dir + "/" + e->d_name;
    const std::string r = rel.empty() ? e->d_name : rel + "/" + e->d_name;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      ListFiles(p, r, out, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      out->push_back(r);
    }
  }
  closedir(d);
}

std::string Sha256Text(const std::string& text) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(text.data(), text.size(), out, &len, EVP_sha256(), nullptr);
  return Hex(out, len);
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

std::string ReferencePathFor(const std::string& dump_path) {
  std::string p = dump_path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p + ".restorewatch.json";
}

const ReferenceTable* Reference::Find(const std::string& name) const {
  for (const auto& t : tables)
    if (t.name == name) return &t;
  return nullptr;
}

std::string ReferenceToJson(const Reference& r) {
  std::string o = "{\n  \"format\": ";
  PutString(o, kFormatName);
  o += ",\n  \"version\": " + std::to_string(r.version) + ",\n  \"target\": ";
  PutString(o, r.target);
  o += ",\n  \"system_identifier\": ";
  PutString(o, r.system_identifier);
  o += ",\n  \"database\": ";
  PutString(o, r.database);
  o += ",\n  \"snapshot\": ";
  PutString(o, r.snapshot);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", r.snapshot_time);
  o += ",\n  \"snapshot_time\": " + std::string(buf) + ",\n  \"snapshot_time_utc\": ";
  PutString(o, FormatTimestamp(r.snapshot_time));
  if (!r.horizon.empty()) {
    o += ",\n  \"horizon\": ";
    PutString(o, r.horizon);
  }
  o += ",\n  \"schema_fingerprint\": ";
  PutString(o, r.schema_fingerprint);
  o += ",\n  \"dump_format\": ";
  PutString(o, r.dump_format);
  o += ",\n  \"dump_files\": [";
  for (std::size_t i = 0; i < r.dump_files.size(); ++i) {
    o += i ? ",\n    {\"name\": " : "\n    {\"name\": ";
    PutString(o, r.dump_files[i].name);
    o += ", \"size\": " + std::to_string(r.dump_files[i].size) + ", \"sha256\": ";
    PutString(o, r.dump_files[i].sha256);
    o += "}";
  }
  o += "\n  ],\n";
  if (r.large_objects && r.large_objects->scanned) {
    o += "  \"large_objects\": {\"count\": " + std::to_string(r.large_objects->count) +
         ", \"hash\": ";
    PutString(o, r.large_objects->hash);
    o += "},\n";
  }
  o += "  \"tables\": [";
  for (std::size_t i = 0; i < r.tables.size(); ++i) {
    const auto& t = r.tables[i];
    o += i ? ",\n    {\"name\": " : "\n    {\"name\": ";
    PutString(o, t.name);
    o += ", \"root\": ";
    PutString(o, t.root);
    o += ", \"rows\": " + std::to_string(t.rows) + ", \"hash\": ";
    PutString(o, t.hash);
    o += ", \"method\": ";
    PutString(o, t.method == HashMethod::kRecord ? "record" : "text");
    o += "}";
  }
  o += "\n  ]\n}\n";
  return o;
}

Reference ParseReference(const std::string& text) {
  JVal v;
  std::string why;
  if (!json::Parse(text, &v, &why)) Bad("not JSON: " + why);
  if (v.t != JVal::T::kObj) Bad("not a JSON object");
  const JVal* fmt = v.Get("format");
  if (!fmt || fmt->t != JVal::T::kStr || fmt->s != kFormatName)
    Bad(std::string("not a restorewatch reference (\"format\" is not \"") + kFormatName + "\")");
  Reference r;
  const std::int64_t version = Int(v, "version");
  if (version == 1)
    Bad("version 1 holds row hashes this restorewatch no longer computes (a swap of values between "
        "rows kept them): re-take it with `restorewatch dump` of this version");
  if (version < 2 || version > kReferenceVersion)
    Bad("unsupported version " + std::to_string(version) +
        " (this restorewatch reads versions 2 to " + std::to_string(kReferenceVersion) + ")");
  r.version = static_cast<int>(version);
  r.target = Str(v, "target");
  r.system_identifier = Str(v, "system_identifier");
  r.database = Str(v, "database");
  r.snapshot = Str(v, "snapshot");
  const std::string& st = Field(v, "snapshot_time", JVal::T::kNum, "").s;
  r.snapshot_time = std::strtod(st.c_str(), nullptr);
  if (!(r.snapshot_time > 0)) Bad("\"snapshot_time\" must be a positive number of Unix seconds");
  if (const JVal* fp = v.Get("schema_fingerprint"); fp && fp->t == JVal::T::kStr)
    r.schema_fingerprint = fp->s;
  if (const JVal* h = v.Get("horizon"); h && h->t == JVal::T::kStr) r.horizon = h->s;
  r.dump_format = Str(v, "dump_format");
  const JVal& files = Field(v, "dump_files", JVal::T::kArr, "");
  if (files.a.empty()) Bad("\"dump_files\" is empty: nothing to check the dump against");
  for (std::size_t i = 0; i < files.a.size(); ++i) {
    const std::string where = "dump_files[" + std::to_string(i) + "]: ";
    const JVal& f = files.a[i];
    if (f.t != JVal::T::kObj) Bad(where + "not an object");
    DumpFileHash h;
    h.name = Str(f, "name", where);
    h.size = static_cast<std::uint64_t>(Int(f, "size", where));
    h.sha256 = Str(f, "sha256", where);
    if (!IsHex64(h.sha256)) Bad(where + "\"sha256\" is not 64 lowercase hex digits");
    r.dump_files.push_back(std::move(h));
  }
  if (const JVal* lo = v.Get("large_objects")) {
    if (lo->t != JVal::T::kObj) Bad("\"large_objects\" must be an object");
    LargeObjectScan s;
    s.scanned = true;
    s.count = Int(*lo, "count", "large_objects: ");
    s.hash = Str(*lo, "hash", "large_objects: ");
    if (!IsDecimal(s.hash)) Bad("large_objects: \"hash\" is not a decimal number");
    r.large_objects = s;
  }
  const JVal& tables = Field(v, "tables", JVal::T::kArr, "");
  for (std::size_t i = 0; i < tables.a.size(); ++i) {
    const std::string where = "tables[" + std::to_string(i) + "]: ";
    const JVal& t = tables.a[i];
    if (t.t != JVal::T::kObj) Bad(where + "not an object");
    ReferenceTable rt;
    rt.name = Str(t, "name", where);
    if (rt.name.empty()) Bad(where + "empty \"name\"");
    rt.root = t.Get("root") ? Str(t, "root", where) : rt.name;
    rt.rows = Int(t, "rows", where);
    rt.hash = Str(t, "hash", where);
    if (!IsDecimal(rt.hash)) Bad(where + "\"hash\" is not a decimal number");
    const std::string m = Str(t, "method", where);
    if (m == "record") {
      rt.method = HashMethod::kRecord;
    } else if (m == "text") {
      rt.method = HashMethod::kText;
    } else {
      Bad(where + "unknown \"method\" " + m + " (record or text)");
    }
    if (r.Find(rt.name)) Bad(where + "table " + rt.name + " listed twice");
    r.tables.push_back(std::move(rt));
  }
  std::sort(r.tables.begin(), r.tables.end(),
            [](const ReferenceTable& a, const ReferenceTable& b) { return a.name < b.name; });
  return r;
}

Reference LoadReference(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return ParseReference(ss.str());
  } catch (const Error& e) {
    throw Error(e.kind(), "the reference " + path + " is invalid: " + e.what());
  }
}

std::vector<DumpFileHash> HashDumpFiles(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw Error(ErrorKind::kIo, "cannot stat " + path + ": " + std::strerror(errno));
  std::vector<DumpFileHash> out;
  if (!S_ISDIR(st.st_mode)) {
    out.push_back(HashFile(path, BaseName(path)));
    return out;
  }
  std::vector<std::string> names;
  ListFiles(path, "", &names);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) out.push_back(HashFile(path + "/" + n, n));
  return out;
}

std::string CompareDumpFiles(const std::vector<DumpFileHash>& expected,
                             const std::vector<DumpFileHash>& actual) {
  const std::string head = "the dump changed after its reference was written: ";
  for (const auto& e : expected) {
    auto it = std::find_if(actual.begin(), actual.end(),
                           [&](const DumpFileHash& a) { return a.name == e.name; });
    if (expected.size() == 1 && actual.size() == 1) it = actual.begin();  // a renamed file dump
    if (it == actual.end()) return head + e.name + " is missing";
    if (it->sha256 != e.sha256)
      return head + "sha256 of " + e.name + " " + it->sha256 + " != " + e.sha256 + " (size " +
             std::to_string(it->size) + ", was " + std::to_string(e.size) + ")";
  }
  for (const auto& a : actual) {
    if (expected.size() == 1 && actual.size() == 1) break;
    if (std::none_of(expected.begin(), expected.end(),
                     [&](const DumpFileHash& e) { return e.name == a.name; }))
      return head + a.name + " was added";
  }
  return {};
}

std::string SchemaFingerprint(const std::vector<TableInfo>& tables) {
  std::vector<const TableInfo*> sorted;
  for (const auto& t : tables) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TableInfo* a, const TableInfo* b) { return a->name < b->name; });
  std::string text;
  for (const TableInfo* t : sorted) {
    text += t->name + "\t" + t->root + "\t";
    for (const auto& c : t->columns) text += c.name + " " + c.type + ",";
    text += "\tkey:";
    // Only the primary key: references written before unique keys were used stay comparable.
    if (t->key_is_primary)
      for (const auto& c : t->key) text += c.name + ",";
    text += "\n";
  }
  return Sha256Text(text);
}

std::shared_ptr<ReferenceState> ReferenceState::For(CheckContext& ctx) {
  std::lock_guard<std::mutex> lk(ctx.cache_mu);
  auto& slot = ctx.cache[kCacheKey];
  if (auto* p = std::any_cast<std::shared_ptr<ReferenceState>>(&slot)) return *p;
  auto s = std::make_shared<ReferenceState>();
  slot = s;
  return s;
}

bool ReferenceState::InUse(const CheckContext& ctx) {
  return !ctx.backup.reference_path.empty() || ctx.exact_point;
}

void ReferenceState::Adopt(Reference ref, std::string label) {
  std::lock_guard<std::mutex> lk(mu_);
  ref_ = std::move(ref);
  label_ = std::move(label);
  prepared_ = true;
}

void ReferenceState::AdoptError(std::exception_ptr error) {
  std::lock_guard<std::mutex> lk(mu_);
  prepare_error_ = std::move(error);
  prepared_ = true;
}

std::string ReferenceState::Label(const CheckContext& ctx) const {
  return label_.empty() ? "reference " + ctx.backup.reference_path : label_;
}

void ReferenceState::Prepare(CheckContext& ctx) {
  std::lock_guard<std::mutex> lk(mu_);
  if (prepared_) return;
  prepared_ = true;
  if (ctx.exact_point) {
    // A live reference is adopted once the copy is at its point; none came: say so.
    prepare_error_ = std::make_exception_ptr(
        Error(ErrorKind::kUnsupported, "no snapshot of the source was taken for this copy"));
    return;
  }
  try {
    ref_ = LoadReference(ctx.backup.reference_path);
    problem_ = CompareDumpFiles(ref_.dump_files, HashDumpFiles(ctx.backup.path));
  } catch (...) {
    prepare_error_ = std::current_exception();
    return;
  }
  if (!problem_.empty()) return;
  // A dump that matches its own reference proves nothing about this target if it was taken of
  // another cluster or database (a file copied into the wrong directory).
  try {
    auto conn = ConnectDrillSource(ctx);
    pqxx::nontransaction nt(*conn);
    const std::string db = nt.exec1("select current_database()")[0].as<std::string>();
    std::string sysid;
    try {
      sysid =
          nt.exec1("select system_identifier::text from pg_control_system()")[0].as<std::string>();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error&) {
      identity_note_ = "the source's system identifier is not readable by this role";
    }
    if (!ref_.system_identifier.empty() && !sysid.empty() && sysid != ref_.system_identifier) {
      problem_ = "the reference was taken of another cluster: system identifier " +
                 ref_.system_identifier + ", the source's is " + sysid;
    } else if (db != ref_.database) {
      problem_ =
          "the reference was taken of database " + ref_.database + ", the target's source is " + db;
    }
  } catch (const std::exception& e) {
    std::string m = e.what();
    std::replace(m.begin(), m.end(), '\n', ' ');
    identity_note_ = "the reference's source identity was not checked: " + m;
  }
}

void ReferenceState::Ensure(CheckContext& ctx) {
  Prepare(ctx);
  std::lock_guard<std::mutex> lk(mu_);
  if (prepare_error_) std::rethrow_exception(prepare_error_);
  if (!ensured_) {
    ensured_ = true;
    try {
      const auto& exclude = ctx.target.checks.exclude_tables;
      auto conn = ConnectRestored(ctx);
      CancelWatch watch(ctx.cancel, *conn);
      std::vector<TableInfo> restored;
      WithPgErrors("cannot list the restored copy's tables", [&] {
        pqxx::nontransaction nt(*conn);
        restored = ListTables(nt, exclude);
      });
      for (const auto& t : ref_.tables) {
        if (MatchesAny(t.name, exclude) || MatchesAny(t.root, exclude)) continue;
        TableResult& tr = tables_[t.name];
        tr.ref = &t;
        tr.name = t.name;
      }
      // The tables to hash, largest first, each with its result slot made before the sessions
      // start (each session then writes only its own tables' slots).
      std::vector<TableInfo> to_hash;
      for (const auto& info : restored) {
        TableResult& tr = tables_[info.name];
        tr.name = info.name;
        tr.in_restored = true;
        tr.info = info;
        if (tr.ref) to_hash.push_back(info);  // only in the copy: reported, not hashed
      }
      const std::vector<std::size_t> order = LargestFirst(to_hash);
      ForEachOnRestored(
          ctx, *conn, order.size(), kRestoredScanWorkers, [&](pqxx::connection& c, std::size_t k) {
            const TableInfo& info = to_hash[order[k]];
            TableResult& tr = tables_.at(info.name);
            try {
              pqxx::nontransaction nt(c);
              const auto t0 = std::chrono::steady_clock::now();
              RangeHash h = HashRows(nt, info, tr.ref->method, "", ref_.hash_format());
              LogDebug(
                  "table hashed in the copy",
                  {{"table", info.name},
                   {"rows", h.rows},
                   {"seconds",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
              tr.rows = h.rows;
              tr.hash = h.hash;
            } catch (const pqxx::broken_connection&) {
              RethrowAsError("cannot hash " + info.name + " in the restored copy");
            } catch (const pqxx::sql_error& e) {
              if (ctx.cancel.cancelled()) throw Error(ErrorKind::kCancelled, "checks cancelled");
              std::string m = e.what();
              while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
              std::replace(m.begin(), m.end(), '\n', ' ');
              tr.error = m;
            }
          });
      WithPgErrors("cannot scan the restored copy's large objects",
                   [&] { restored_lo_ = ScanLargeObjects(*conn, nullptr, ref_.hash_format()); });
    } catch (...) {
      ensure_error_ = std::current_exception();
    }
  }
  if (ensure_error_) std::rethrow_exception(ensure_error_);
}

}  // namespace rw

namespace rw {

void PrepareReferenceSession(pqxx::connection& conn) {
  pqxx::nontransaction nt(conn);
  nt.exec0("set row_security = off");
  nt.exec0("set idle_in_transaction_session_timeout = 0");
}

std::string ReadSystemIdentifier(pqxx::dbtransaction& tx) {
  try {
    pqxx::subtransaction sub(tx, "rw_sysid");
    std::string id =
        sub.exec1("select system_identifier::text from pg_control_system()")[0].as<std::string>();
    sub.commit();
    return id;
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error&) {
    return {};  // not readable by this role: recorded as unknown
  }
}

void HashReferenceTables(pqxx::connection& conn, pqxx::dbtransaction& tx,
                         const TargetConfig& target, CancelToken& cancel, Reference* ref) {
  std::vector<TableInfo> infos = ListTables(tx, target.checks.exclude_tables);
  ref->schema_fingerprint = SchemaFingerprint(infos);
  ref->tables.clear();
  for (const auto& info : infos) {
    cancel.ThrowIfCancelled();
    TableScan sc = ScanTable(conn, &tx, info, nullptr, cancel);
    if (!sc.error.empty())
      throw Error(ErrorKind::kQuery, "cannot hash " + info.name + ": " + sc.error);
    ReferenceTable rt;
    rt.name = info.name;
    rt.root = info.root;
    rt.rows = sc.rows;
    rt.hash = sc.hash;
    rt.method = sc.method;
    ref->tables.push_back(std::move(rt));
  }
  LargeObjectScan lo = ScanLargeObjects(conn, &tx);
  if (lo.scanned) ref->large_objects = lo;
}

Reference TakeLiveReference(const TargetConfig& target, CancelToken& cancel,
                            const std::function<void(const Reference& head)>& on_point) {
  Reference ref;
  ref.target = target.name;
  SessionLimits limits = DrillSourceLimits(target);
  limits.application_name = "restorewatch_snapshot";
  auto conn = Connect(target.source, limits);
  CancelWatch watch(cancel, *conn);
  WithPgErrors("cannot take a snapshot of the source", [&] {
    PrepareReferenceSession(*conn);
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*conn, "rw_snapshot");
    // One statement: the snapshot is taken before it runs, so every commit it sees was written
    // to WAL before the insert position read here.
    pqxx::row s = tx.exec1(
        "select pg_current_snapshot()::text, extract(epoch from now())::float8,"
        " current_database(), pg_is_in_recovery(),"
        " case when pg_is_in_recovery() then null else pg_current_wal_insert_lsn()::text end");
    ref.horizon = s[0].as<std::string>("");
    ref.snapshot_time = s[1].as<double>();
    ref.database = s[2].as<std::string>();
    if (s[3].as<bool>())
      throw Error(ErrorKind::kUnsupported,
                  "the source is in recovery (a standby): an exact point needs the primary, "
                  "whose WAL insert position orders its commits");
    ref.lsn = s[4].as<std::string>("");
    ref.system_identifier = ReadSystemIdentifier(tx);
    if (on_point) on_point(ref);
    HashReferenceTables(*conn, tx, target, cancel, &ref);
    tx.commit();
  });
  return ref;
}

}  // namespace rw
