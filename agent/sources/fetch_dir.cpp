#include "agent/sources/fetch_dir.h"

#include <unistd.h>

#include <fstream>

#include "agent/errors.h"
#include "agent/log.h"
#include "agent/orphans.h"
#include "agent/units.h"

namespace rw {

FetchDir::FetchDir(const std::string& work_dir, const std::string& target,
                   const std::optional<RunAs>& owner, const std::string& kind)
    : outer_(MakeTempDir(work_dir, "fetch-", owner)) {
  std::ofstream m(outer_ + "/.restorewatch");
  m << "owner=restorewatch pid=" << getpid() << " created=" << FormatTimestamp(NowUnix())
    << "\nkind=" << kind << " " << FormatIdentity(SelfIdentity()) << " target=" << target << "\n";
  m.close();
  if (!m) {
    RemoveTree(outer_);
    throw Error(ErrorKind::kIo, "cannot write the marker file in " + outer_);
  }
  path_ = outer_ + "/backup";
  try {
    MakeDirs(path_, 0700, owner);
  } catch (...) {
    RemoveTree(outer_);
    throw;
  }
}

FetchDir::~FetchDir() {
  std::string err;
  if (!RemoveTree(outer_, &err))
    LogWarn("cannot remove the fetch directory", {{"dir", outer_}, {"error", err}});
}

}  // namespace rw
