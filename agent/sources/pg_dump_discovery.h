#pragma once
// Discovery of pg_dump backups, without a server: which directory entries match a pattern, which
// are still being written, what format a file is in, what its header says, and which backup is
// the newest. Used by the pg_dump source (agent/sources/pg_dump_source.cpp) and unit-tested on
// its own. Pure functions over the file system; thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/model.h"

namespace rw::pgdump {

enum class DumpFormat {
  kUnknown,    // matches the pattern but is not something pg_restore or psql can restore
  kCustom,     // pg_dump -Fc: magic "PGDMP"
  kDirectory,  // pg_dump -Fd: a directory holding toc.dat
  kTar,        // pg_dump -Ft: a ustar archive whose first member is toc.dat
  kPlain,      // pg_dump -Fp: SQL text
  kPlainGzip,  // plain, gzip-compressed (pg_dump -Fp -Z, or gzip afterwards)
  kPlainZstd,  // plain, zstd-compressed
  kPlainLz4,   // plain, lz4-compressed
};

// "custom", "directory", "tar", "plain", "plain.gz", "plain.zst", "plain.lz4", "unknown".
const char* FormatName(DumpFormat f);
// Custom, directory and tar: restored with pg_restore.
bool IsArchive(DumpFormat f);
// The program that decompresses a compressed plain format ("gzip", "zstd", "lz4"), else "".
std::string Decompressor(DumpFormat f);

// What the first bytes of a file say. problem is set for kUnknown (one line, e.g. "empty file").
struct Sniff {
  DumpFormat format = DumpFormat::kUnknown;
  std::string problem;
};
// From the first bytes of a file (4 KB is plenty). A text head is plain only when it carries
// pg_dump's "-- PostgreSQL database dump" header; pg_dumpall output is refused.
Sniff SniffBytes(const std::string& head);
// From a path: a directory is kDirectory when it holds toc.dat; a file by SniffBytes.
Sniff SniffPath(const std::string& path);

// What a dump says about itself.
struct DumpHeader {
  std::optional<double> started_at;  // "Archive created at" / "-- Started on", Unix seconds
  std::string database;              // "dbname:" of an archive; --create's database for plain
  int server_major = 0;              // "Dumped from database version"
  int dump_tool_major = 0;           // "Dumped by pg_dump version"
  bool creates_database = false;     // a plain dump made with --create (CREATE DATABASE, \connect)
};
// From `pg_restore -l` output (only its header comment lines are read).
DumpHeader ParseArchiveList(const std::string& listing);
// From the first KBs of a plain dump's text.
DumpHeader ParsePlainHeader(const std::string& head);
// "15.18 (Debian 15.18-0+deb12u1)" -> 15, "9.6.24" -> 9, "17beta1" -> 17; 0 when unreadable.
int MajorOf(const std::string& version);
// "2026-11-25 03:15:04 UTC" as written by pg_dump/pg_restore (strftime "%Y-%m-%d %H:%M:%S %Z").
// UTC/GMT and numeric zones ("+03", "-0130") are exact; another zone name is read as the agent's
// local time, which is what pg_restore itself assumes.
std::optional<double> ParseDumpTime(const std::string& text);

// A name a writer uses while the file is incomplete: ends in .tmp, .part, .partial or
// .inprogress, or starts with '.'.
bool IsInFlightName(const std::string& name);
// A reference written by `restorewatch dump` beside a dump (name ends in .restorewatch.json): part
// of that dump, never a backup of its own.
bool IsReferenceName(const std::string& name);
// `<path>.restorewatch.json` when that file exists beside the dump at `path`, else "".
std::string ReferenceBeside(const std::string& path);

// One directory entry that matched the pattern, as seen in one look.
struct Entry {
  std::string dir;
  std::string name;
  std::string path;
  bool is_dir = false;
  std::uint64_t size = 0;       // file size, or the total of the files in a directory
  std::int64_t mtime_ns = 0;    // file mtime, or the newest mtime in a directory (and itself)
  std::optional<double> birth;  // statx birth time, when the file system records it
  bool operator==(const Entry& o) const {
    return path == o.path && is_dir == o.is_dir && size == o.size && mtime_ns == o.mtime_ns;
  }
};
// Entries of `dirs` whose names match the fnmatch pattern (not recursive); symlinks are followed,
// and a file reached twice (a "latest" symlink) is listed once, under its own name. Throws
// Error(kIo) naming the dir when one cannot be read.
std::vector<Entry> ListMatching(const std::vector<std::string>& dirs, const std::string& pattern);
// A fresh look at one path; false when it is gone.
bool Look(const std::string& path, Entry* e);

// The newest backup: by started_at, then completed_at, then path. nullptr when empty.
const BackupInfo* SelectNewest(const std::vector<BackupInfo>& backups);

}  // namespace rw::pgdump
