#pragma once
// The pg_dump backup source: files or directories made by pg_dump in any format (custom,
// directory, tar, plain, plain gzip/zstd/lz4) found under backup.paths by backup.pattern, plus an
// optional pg_dumpall --globals-only file. A backup's time is the archive header's "Archive
// created at" (its snapshot), falling back to the file's birth time or mtime; a file still being
// written (size changing within backup.settle, or a temp name) is never the latest.
#include <memory>

#include "agent/backup_source.h"

namespace rw {

std::unique_ptr<BackupSource> MakePgDumpSource(const Environment& env, const TargetConfig& target);

}  // namespace rw
