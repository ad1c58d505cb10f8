#pragma once
// pg_dump backups in an S3 bucket (backup.path = "s3://bucket/prefix", [target.backup.s3]).
// The catalogue is one ListObjectsV2 listing below the prefix (run by the catalogue collector on
// backup.catalogue_interval and by a drill's discover stage, never by a scrape): an object right
// below the prefix whose name matches backup.pattern is a dump file; a "directory" NAME/ holding
// NAME/toc.dat is a directory-format dump (all keys below NAME/). A backup's time is its
// LastModified (not exact: the header is read once downloaded). For a drill the chosen backup
// (and the newest globals file) is downloaded into a marked FetchDir in agent.work_dir (stage
// fetch), then restored by the pg_dump source's own code from there; the directory is removed
// when the restore ends.
#include <memory>
#include <string>
#include <vector>

#include "agent/backup_source.h"
#include "agent/storage/s3_client.h"

namespace rw {

std::unique_ptr<BackupSource> MakeS3PgDumpSource(const Environment& env,
                                                 const TargetConfig& target);

// pg_basebackup outputs in a bucket (backup.path = "s3://bucket/prefix", type = "basebackup"):
// each NAME/ below the prefix holding NAME/backup_manifest is a complete backup (completed at the
// manifest's LastModified; one without a manifest is in flight or broken, never the latest).
// A drill downloads NAME/ into a marked FetchDir, and, with wal_archive = "s3://...", the WAL
// the recovery needs (every segment from the backup's start segment on, per its backup_label,
// plus every .history file) into a local archive beside it that the sandbox's restore_command
// reads (the sandbox gets no credentials); then the basebackup source's own code verifies,
// recovers and checks it. A local wal_archive is used as it is.
std::unique_ptr<BackupSource> MakeS3BasebackupSource(const Environment& env,
                                                     const TargetConfig& target);

// The WAL archive keys a recovery from `start_segment` (a 24-hex segment name, "" = all) needs:
// segments and .partial files at or after its log/seg (any timeline), every .history and .backup
// file. Pure; unit-tested.
std::vector<std::string> WalKeysNeeded(const std::vector<S3Object>& objects,
                                       const std::string& list_prefix,
                                       const std::string& start_segment);

// The backups a listing holds (pure; unit-tested): `objects` are the keys below loc.ListPrefix().
// Fills *notes with what was skipped and why, *running with in-flight entries, *globals_key with
// the newest object matching globals_pattern ("" when none or no pattern).
std::vector<BackupInfo> S3DumpBackups(const std::vector<S3Object>& objects, const S3Location& loc,
                                      const std::string& pattern,
                                      const std::string& globals_pattern,
                                      std::vector<std::string>* notes, std::size_t* running,
                                      std::string* globals_key);

}  // namespace rw
