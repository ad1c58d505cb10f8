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

// The backups a listing holds (pure; unit-tested): `objects` are the keys below loc.ListPrefix().
// Fills *notes with what was skipped and why, *running with in-flight entries, *globals_key with
// the newest object matching globals_pattern ("" when none or no pattern).
std::vector<BackupInfo> S3DumpBackups(const std::vector<S3Object>& objects, const S3Location& loc,
                                      const std::string& pattern,
                                      const std::string& globals_pattern,
                                      std::vector<std::string>* notes, std::size_t* running,
                                      std::string* globals_key);

}  // namespace rw
