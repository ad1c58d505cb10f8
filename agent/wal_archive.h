#pragma once
// WAL archive continuity: what an `archive_command` such as `cp %p ARCHIVE/%f` writes, read
// without a server. Segment names (timeline + log + seg), `.history` files and the timeline
// switches they record, compressed segments, `.partial` segments (never part of the history) and
// `.backup` history files. CheckContinuity walks every segment a recovery needs from a start LSN
// (a base backup's start) to the newest archived segment, across timeline switches, and names
// the first missing segment of each gap and every segment that is not a real WAL segment. What was
// verified is remembered in a small state file, so a re-check reads only new segments.
//
// Compressed segments recognised, by suffix, as archive_commands commonly write them:
// `.gz` (gzip), `.zst` (zstd), `.lz4` (lz4), `.bz2` (bzip2), `.xz` (xz); the matching program
// must be in PATH to verify them (otherwise the segment counts as present but unverified and a
// note says so). Other suffixes are not segments.
//
// Pure functions are thread-safe. CheckContinuity may run concurrently for different state
// dirs; two runs on one state dir are safe (the state file is replaced atomically) but may each
// verify the same new segments.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/units.h"

namespace rw::wal {

using Lsn = std::uint64_t;

inline constexpr std::uint32_t kDefaultSegmentSize = 16u * 1024u * 1024u;

// "0/3000028" (hex "high/low", as PostgreSQL prints an LSN); nullopt when malformed.
std::optional<Lsn> ParseLsn(const std::string& text);
std::string FormatLsn(Lsn lsn);
// A segment size PostgreSQL accepts: a power of two from 1 MiB to 1 GiB.
bool ValidSegmentSize(std::uint64_t bytes);

// The segment size of the WAL in `archive_dir`: the long page header of its first uncompressed
// segment (by name), else kDefaultSegmentSize (none yet, all compressed, or unreadable).
std::uint32_t ArchiveSegmentSize(const std::string& archive_dir);

// Where `pg_waldump -e` must stop to print exactly the records that start before `lsn`: the page's
// start when `lsn` sits right after a page header (the insert position after a WAL switch, or
// after a record that ended on a page boundary), else `lsn`. At such an end PostgreSQL 15's
// pg_waldump reads only the header of that page and then checks a record header it did not read
// (what its buffer held before): "record with incorrect prev-link" or "invalid resource manager
// ID" at `lsn`, exit 1, though every record before `lsn` is there. No record starts or continues
// inside a page header, so stopping at the page's start prints the same records. 8 KiB pages.
Lsn WaldumpEnd(Lsn lsn, std::uint32_t seg_size);

// Segment numbers: the segment holding `lsn`, and a segment's file name on `timeline`.
inline std::uint64_t SegmentNo(Lsn lsn, std::uint32_t seg_size) { return lsn / seg_size; }
std::string SegmentName(std::uint32_t timeline, std::uint64_t segno, std::uint32_t seg_size);
// "00000002.history"
std::string HistoryName(std::uint32_t timeline);

enum class ArchiveFileKind {
  kOther,          // not a WAL archive file (left alone)
  kSegment,        // 000000010000000000000003[.gz|.zst|.lz4|.bz2|.xz]
  kPartial,        // 000000010000000000000003.partial[...]: a promoted standby's last segment
  kHistory,        // 00000002.history[...]
  kBackupHistory,  // 000000010000000000000003.00000028.backup[...]: written by pg_backup_stop
};

struct ArchiveName {
  ArchiveFileKind kind = ArchiveFileKind::kOther;
  std::uint32_t timeline = 0;
  std::uint32_t log = 0;            // the name's middle 8 hex digits
  std::uint32_t seg = 0;            // the name's last 8 hex digits
  std::uint32_t backup_offset = 0;  // .backup: the start LSN's offset in its segment
  std::string compression;          // "", "gz", "zst", "lz4", "bz2", "xz"
  // The segment number for a segment size; nullopt when `seg` is out of range for that size.
  std::optional<std::uint64_t> SegNo(std::uint32_t seg_size) const;
};
// From a file name alone (no I/O). Lower-case hex is refused, as PostgreSQL writes upper case.
ArchiveName ParseArchiveName(const std::string& name);
// The program that decompresses `compression` ("gzip", "zstd", ...), "" for none/unknown.
std::string DecompressorFor(const std::string& compression);

// One line of a timeline history file: `timeline` ended (switched to the next) at `switchpoint`.
struct TimelineSwitch {
  std::uint32_t timeline = 0;
  Lsn switchpoint = 0;
  std::string reason;
};
// A `N.history` file's text: its ancestors in order, oldest first. nullopt (and *error, one
// line) when a line is malformed or timelines do not increase.
std::optional<std::vector<TimelineSwitch>> ParseHistory(const std::string& text,
                                                        std::string* error = nullptr);

// A `.backup` file's text (START/STOP WAL LOCATION, START/STOP TIME, LABEL, timelines).
struct BackupHistory {
  Lsn start_lsn = 0;
  Lsn stop_lsn = 0;
  Lsn checkpoint_lsn = 0;
  std::uint32_t start_timeline = 0;
  std::uint32_t stop_timeline = 0;
  std::optional<double> start_time;  // Unix seconds
  std::optional<double> stop_time;
  std::string label;
};
std::optional<BackupHistory> ParseBackupHistory(const std::string& text);

// What the first page of a segment says, and whether the file is a real WAL segment.
struct SegmentCheck {
  bool ok = false;
  std::string problem;             // one line naming the file, when !ok
  std::uint32_t page_magic = 0;    // xlp_magic (0xD110 for PostgreSQL 15)
  int server_major = 0;            // from the magic when known, else 0
  std::uint32_t segment_size = 0;  // xlp_seg_size of the long header
  std::uint64_t system_identifier = 0;
};
// The PostgreSQL major version that writes `magic` (10..17), 0 when unknown.
int MajorForPageMagic(std::uint32_t magic);
// Checks bytes of an uncompressed segment: `head` holds at least its first page (or all of a
// short file), `file_size` its length. Expects timeline `timeline` (the first page may carry an
// older one: the first segment of a new timeline starts with its parent's data), page address
// segno * seg_size, the long header's segment size, and a known-looking page magic.
SegmentCheck CheckSegmentBytes(const std::string& name, const std::string& head,
                               std::uint64_t file_size, std::uint32_t timeline, std::uint64_t segno,
                               std::uint32_t seg_size);
// Same for a file; a compressed one is decompressed (its program from PATH) into a temp file in
// `scratch_dir` (removed afterwards), so a truncated or corrupt stream is named too. Throws
// Error(kCancelled) when cancelled; every other failure is a problem in the result.
SegmentCheck CheckSegmentFile(const std::string& path, std::uint32_t timeline, std::uint64_t segno,
                              std::uint32_t seg_size, const std::string& scratch_dir,
                              CancelToken* cancel = nullptr,
                              Duration timeout = std::chrono::minutes(2));

// Where continuity starts: a base backup's start (and stop: its segments are needed even when
// nothing newer is archived).
struct StartPoint {
  std::uint32_t timeline = 1;
  Lsn lsn = 0;
  std::optional<Lsn> stop_lsn;
};

struct ContinuityOptions {
  std::string archive_dir;  // what archive_command writes into
  // Where the memory of verified segments lives (file wal_archive.state, replaced atomically);
  // "" = no memory, every segment is read each time. Also the scratch dir for decompression.
  std::string state_dir;
  // 0 = read from the first uncompressed segment's long page header, else 16 MiB.
  std::uint32_t segment_size = 0;
  // nullopt = from the oldest segment present on the newest timeline's history.
  std::optional<StartPoint> start;
  // The newest segment, short and modified within this, is being written by archive_command
  // right now: counted present but not verified (and not named corrupt).
  Duration settle = std::chrono::seconds(60);
  Duration decompress_timeout = std::chrono::minutes(2);  // per compressed segment
};

// A run of missing segments on one timeline.
struct Gap {
  std::uint32_t timeline = 0;
  std::string first_missing;  // segment file name
  std::string last_missing;
  std::uint64_t count = 0;
};

struct BadSegment {
  std::string name;  // the archive file
  std::string problem;
};

struct ContinuityReport {
  std::uint32_t segment_size = kDefaultSegmentSize;
  std::vector<std::uint32_t> timelines;        // the path followed, e.g. {1, 2, 3}
  std::string first_segment;                   // first segment needed (from the start point)
  std::string newest_segment;                  // newest segment present on the path ("" if none)
  std::optional<double> newest_segment_mtime;  // Unix seconds
  std::uint64_t expected = 0;                  // segments from first_segment to the end
  std::uint64_t present = 0;
  std::uint64_t missing = 0;
  std::vector<Gap> gaps;                // in WAL order
  std::vector<BadSegment> bad;          // present but not a usable segment (truncated, corrupt)
  std::vector<std::string> in_flight;   // short newest segment still being written
  std::vector<std::string> unverified;  // present, not checkable (decompressor missing)
  std::vector<std::string> partials;    // .partial files seen (not part of the history)
  std::vector<std::string> backup_histories;  // .backup files seen
  std::uint64_t verified_now = 0;             // segments read in this run
  std::uint64_t verified_before = 0;          // segments skipped: verified by an earlier run
  std::string problem;  // the history cannot be followed (missing .history, foreign timeline)
  std::vector<std::string> notes;

  // What restorewatch_wal_archive_gaps reports: missing plus unusable segments, plus one when
  // the timeline history cannot be followed (a missing .history file breaks recovery too).
  std::uint64_t unusable() const { return missing + bad.size() + (problem.empty() ? 0 : 1); }
  bool ok() const { return missing == 0 && bad.empty() && problem.empty(); }
  // One line: "ok: 12 segments 000000010000000000000003..00000002000000000000000E" or the
  // first problem: "missing 000000010000000000000005 (2 segments missing in 1 gap)".
  std::string Summary() const;
};

// Throws Error(kIo) when the archive dir cannot be listed, Error(kCancelled) when cancelled.
// Everything about the archive's content is data in the report.
ContinuityReport CheckContinuity(const ContinuityOptions& options, CancelToken* cancel = nullptr);

// The name of the state file inside ContinuityOptions::state_dir.
inline constexpr const char* kStateFileName = "wal_archive.state";

}  // namespace rw::wal
