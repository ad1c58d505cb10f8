#pragma once
// The pg_dump backup source: files or directories made by pg_dump in any format (custom,
// directory, tar, plain, plain gzip/zstd/lz4) found under backup.paths by backup.pattern, plus an
// optional pg_dumpall --globals-only file. A backup's time is the archive header's "Archive
// created at" (its snapshot), falling back to the file's birth time or mtime; a file still being
// written (size changing within backup.settle, or a temp name) is never the latest.
//
// Discovery (agent/sources/pg_dump_discovery.h): every entry matching the pattern is a backup,
// except temp names, directories without toc.dat and entries still changing; one that is not a
// pg_dump backup at all (empty, wrong magic) still counts, so the drill fails on it rather than
// silently verifying an older one. Archive headers are read with `pg_restore -l`, cached by
// (path, size, mtime); the cache is guarded by a mutex, so Catalogue() (monitor thread) and
// Latest()/Restore() (drill thread) may run at once on one instance.
//
// Restore: pg_restore -j (tar: no -j) or psql -v ON_ERROR_STOP=1 (plain; piped from gzip, zstd or
// lz4). Without a globals file, archives restore with --no-owner --no-privileges and plain dumps
// get the roles they name created first (NOLOGIN, through Sandbox::CreateRoles). The globals file
// runs only in an ephemeral sandbox (it alters roles server-wide). Every error line must match
// the allow-list, and a pg_restore that stopped before the end of the archive fails regardless.
// Failures are Error(kBadInput, "pg_restore failed on FILE: <its first 3 error lines>") (kIo for a
// full disk, kProcess for a lost server), kUnsupported for a dump newer than the binaries.
#include <memory>

#include "agent/backup_source.h"

namespace rw {

std::unique_ptr<BackupSource> MakePgDumpSource(const Environment& env, const TargetConfig& target);

}  // namespace rw
