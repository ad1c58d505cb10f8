#pragma once
// File verification of one pg_basebackup output with `pg_verifybackup` (from the PostgreSQL bin
// dir whose major matches the backup's), against its backup_manifest: every file listed is there
// with its size and checksum, nothing unlisted, and the WAL from the backup's start to its end
// parses. PostgreSQL 15's pg_verifybackup cannot read tar, so a tar backup is first extracted
// (base.tar* into extract_dir, pg_wal.tar* into extract_dir/pg_wal, decompressing gzip/lz4/zstd)
// with `tar`; the extracted directory can then serve as the data directory of a restore.
//
// WAL: a backup that carries its WAL (-X stream/fetch) is parsed from its own pg_wal. One without
// (-X none) is parsed from the WAL archive when one is given and holds the backup's segments
// uncompressed (pg_waldump reads no compressed segments); otherwise WAL parsing is skipped
// (`-n`) and wal_note says why, so the caller can rely on wal_archive.h for it instead.
//
// Findings are data: a backup that does not verify is `ok = false` with a one-line reason naming
// the file. Throws Error(kCancelled) when cancelled, Error(kProcess) when a tool cannot be
// started; a tool that runs and fails is a finding (or, for a timeout, Error(kTimeout)).
// Thread-safe: each call owns its children; two calls must not share an extract_dir.
#include <optional>
#include <string>
#include <vector>

#include "agent/cancel.h"
#include "agent/pg/pg_tools.h"
#include "agent/pg/process.h"
#include "agent/sources/basebackup_catalogue.h"

namespace rw::basebackup {

struct VerifyOptions {
  PgTools tools;  // must be the backup's major (checked: a mismatch is a finding)
  // Children (tar, pg_verifybackup) run as this user (nullopt: the agent's own), so that files
  // extracted for a restore belong to the server's user. The backup must be readable by it.
  std::optional<RunAs> run_as;
  // Tar backups: an empty directory, owned by run_as, that the caller created and removes. Not
  // used for plain backups.
  std::string extract_dir;
  std::string wal_archive;                      // "" = none
  Duration timeout = std::chrono::minutes(30);  // each of extraction and verification
  // When set, every tar command line is appended here as it runs (for the runbook).
  std::vector<std::vector<std::string>>* extract_commands = nullptr;
};

struct VerifyResult {
  bool ok = false;
  std::string reason;                 // one line when !ok: "checksum mismatch for file ..."
  std::vector<std::string> problems;  // every error line pg_verifybackup printed
  std::string verified_dir;           // the directory verified (the backup, or extract_dir)
  bool wal_parsed = false;            // pg_verifybackup parsed the backup's WAL
  std::string wal_source;             // "backup" (its pg_wal) or the archive dir, when parsed
  std::string wal_note;               // why the WAL was not parsed
  double extract_seconds = 0;
  double verify_seconds = 0;
  std::vector<std::string> verify_command;  // the pg_verifybackup command line that ran
};

// The one-line reason from pg_verifybackup's output: the first `error:` line without the
// program prefix, plus "(and N more problems)"; every error line goes into *problems.
std::string VerifyReason(const std::string& output, std::vector<std::string>* problems = nullptr);

// Extracts a tar backup into `dir` (see VerifyOptions::extract_dir). Returns "" on success, else
// a one-line reason naming the archive ("base.tar.gz: unexpected end of file").
std::string ExtractTarBackup(const BaseBackupEntry& backup, const std::string& dir,
                             const VerifyOptions& options, CancelToken* cancel = nullptr);

VerifyResult VerifyBaseBackup(const BaseBackupEntry& backup, const VerifyOptions& options,
                              CancelToken* cancel = nullptr);

}  // namespace rw::basebackup
