#pragma once
// The catalogue of a directory of pg_basebackup outputs, without a server: every subdirectory is
// one backup, plain (`-Fp`: a data directory) or tar (`-Ft`: base.tar, or base.tar.gz / .lz4 /
// .zst as `--compress` writes them, plus pg_wal.tar[.gz|.lz4|.zst] with `-X stream`), each with
// its `backup_manifest`. A backup is complete when its manifest parses, its Manifest-Checksum
// (SHA-256 over the file up to that line) matches, backup_label agrees with it, and: plain, every
// file it lists is there with its size; uncompressed tar, its member headers (checksums, sizes)
// lead to the end-of-archive block within the file. A compressed tar cut short is found only by
// extraction (basebackup_verify.h). Anything else (no manifest, a truncated or edited manifest,
// a missing file, a `.partial`-looking name, a tablespace tar) is listed with a one-line reason
// and is never the latest. The file contents are checked by basebackup_verify.h, not here.
//
// Cost per call: every manifest is read and hashed, a plain backup's files are stat()ed, a tar
// backup's backup_label and PG_VERSION are read with `tar --occurrence=1` (it stops at those
// members, the first ones pg_basebackup writes: about 10 ms each). Nothing is cached. Pure
// functions over the file system; thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/wal_archive.h"

namespace rw::basebackup {

enum class Layout { kPlain, kTar };
enum class Compression { kNone, kGzip, kLz4, kZstd };

// "plain", "tar", "tar.gz", "tar.lz4", "tar.zst"
std::string FormatName(Layout layout, Compression compression);
// "gzip", "lz4", "zstd", "" for none.
std::string DecompressorFor(Compression compression);

// One file the manifest lists.
struct ManifestFile {
  std::string path;  // relative to the data directory
  std::uint64_t size = 0;
  std::string checksum_algorithm;  // CRC32C, SHA256, ... or "" (NONE)
};

struct ManifestWalRange {
  std::uint32_t timeline = 0;
  wal::Lsn start = 0;
  wal::Lsn end = 0;
};

struct Manifest {
  int version = 0;
  std::vector<ManifestFile> files;
  std::vector<ManifestWalRange> wal_ranges;
  std::string checksum;  // Manifest-Checksum, hex
};

// Parses a backup_manifest and checks its Manifest-Checksum. nullopt and *error (one line:
// "truncated", "checksum mismatch", "not JSON at byte 123") when it is not a complete manifest.
std::optional<Manifest> ParseManifest(const std::string& text, std::string* error = nullptr);

// backup_label, as pg_basebackup writes it into the backup.
struct BackupLabel {
  wal::Lsn start_lsn = 0;
  std::string start_segment;  // "(file 000000010000000000000003)"
  wal::Lsn checkpoint_lsn = 0;
  std::string method;  // streamed
  std::string from;    // primary, standby
  std::optional<double> start_time;
  std::string label;
  std::uint32_t start_timeline = 0;
};
std::optional<BackupLabel> ParseBackupLabel(const std::string& text);

struct BaseBackupEntry {
  std::string id;    // the subdirectory's name
  std::string path;  // the subdirectory
  Layout layout = Layout::kPlain;
  Compression compression = Compression::kNone;  // of base.tar
  std::string base_file;                         // tar: path of base.tar[.gz|.lz4|.zst]
  std::string wal_file;  // tar: path of pg_wal.tar[...], "" without (-X none or -X fetch)
  Compression wal_compression = Compression::kNone;
  bool wal_included = false;  // the backup carries the WAL it needs (-X stream/fetch)

  bool complete = false;
  std::string problem;  // why not complete, one line; "" when complete
  // Being written: no backup_manifest yet (pg_basebackup writes it last) and something in the
  // directory (itself, an entry, or an entry of base/ or pg_wal/) changed within
  // running_quiet_seconds.
  bool running = false;

  std::string label;
  std::string backup_from;  // primary / standby
  wal::Lsn start_lsn = 0;   // manifest WAL-Ranges (== backup_label START WAL LOCATION)
  wal::Lsn stop_lsn = 0;    // manifest WAL-Ranges end (the backup's end of WAL)
  wal::Lsn checkpoint_lsn = 0;
  std::uint32_t start_timeline = 0;
  std::uint32_t stop_timeline = 0;
  std::optional<double> start_time;  // backup_label START TIME, Unix seconds
  // The `.backup` history file's STOP TIME when a WAL archive was given and holds it, else the
  // manifest's mtime (pg_basebackup writes it last); stop_time_exact says which.
  double stop_time = 0;
  bool stop_time_exact = false;
  int server_major = 0;            // PG_VERSION (plain: the file; tar: the member)
  std::uint64_t size_bytes = 0;    // on disk, the backup's files
  std::uint64_t data_bytes = 0;    // total of the files the manifest lists
  std::size_t file_count = 0;      // files the manifest lists
  std::string checksum_algorithm;  // of the files, e.g. CRC32C
  std::vector<ManifestWalRange> wal_ranges;
};

struct CatalogueOptions {
  // The WAL archive, for the `.backup` files that give a backup's exact stop time ("" = none).
  std::string wal_archive;
  Duration tool_timeout = std::chrono::minutes(2);  // tar reading backup_label / PG_VERSION
  // A directory without backup_manifest unchanged this long is no longer being written (its
  // writer died): BaseBackupEntry::running is false then.
  double running_quiet_seconds = 15 * 60;
};

struct BaseBackupCatalogue {
  std::vector<BaseBackupEntry> backups;  // all, complete or not, oldest first
  std::vector<std::string> notes;        // entries skipped (plain files in `path`, ...)
  // The newest complete backup (by start time, then start LSN); nullptr when there is none.
  const BaseBackupEntry* Latest() const;
  const BaseBackupEntry* OldestComplete() const;
  std::size_t CompleteCount() const;
};

// A name a copier or writer uses while a directory is incomplete: ends in .partial, .part, .tmp,
// .inprogress or .incomplete, or starts with '.'.
bool IsInFlightName(const std::string& name);

// One pg_basebackup output directory.
BaseBackupEntry ReadBaseBackup(const std::string& dir, const CatalogueOptions& options = {},
                               CancelToken* cancel = nullptr);
// Every subdirectory of `path`. Throws Error(kIo) when `path` cannot be listed, Error(kCancelled).
BaseBackupCatalogue ReadCatalogue(const std::string& path, const CatalogueOptions& options = {},
                                  CancelToken* cancel = nullptr);

}  // namespace rw::basebackup
