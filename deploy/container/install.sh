#!/bin/sh
# The install steps of deploy/container/Containerfile, as a script so they can be run and tested
# without a container engine. Debian 12 only; run as root.
#
#   install.sh packages            apt-get install the runtime packages (needs network)
#   install.sh package DEB         install a restorewatch .deb built with `cpack -G DEB`
#   install.sh user                create the unprivileged restorewatch user (uid/gid 10001)
#   install.sh dirs [ROOT]         create state, work and config dirs (under ROOT, default /)
#   install.sh all DEB             packages + package + user + dirs (what the Containerfile runs)
#   install.sh --dry-run STEP ...  print the commands instead of running them
#
# Packages: the PostgreSQL 15 server binaries for the ephemeral sandbox (initdb, postgres,
# pg_restore, psql) and libcurl4 (loaded for S3 repositories; a Recommends of the .deb) here; the
# libraries the binary links come from the .deb's Depends (computed by dpkg-shlibdeps when it was
# built), which apt resolves in the `package` step.
set -eu

RW_UID=${RW_UID:-10001}
RW_PACKAGES="ca-certificates libcurl4 postgresql-15 postgresql-client-15"

DRY=""
if [ "${1:-}" = "--dry-run" ]; then
  DRY="echo"
  shift
fi
run() { $DRY "$@"; }

step_packages() {
  run apt-get update
  # The postgresql package creates and starts a default cluster; the sandbox never uses it.
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $RW_PACKAGES
  # No default cluster: the agent starts its own throwaway clusters in work_dir.
  run sh -c 'pg_dropcluster 15 main --stop 2>/dev/null || true'
}

step_package() {
  deb=$1
  case "$deb" in /*|./*) ;; *) deb=./$deb ;; esac   # apt takes a path only when it has a slash
  # apt installs the .deb's Depends (libpqxx-6.4, libpq5, libssl3, ...) with it.
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb"
}

step_user() {
  if getent passwd restorewatch >/dev/null 2>&1; then
    echo "install.sh: user restorewatch exists"
    return 0
  fi
  run groupadd --system --gid "$RW_UID" restorewatch
  run useradd --system --uid "$RW_UID" --gid restorewatch --home-dir /var/lib/restorewatch \
    --no-create-home --shell /usr/sbin/nologin restorewatch
}

step_dirs() {
  root=${1:-}
  # state_dir and work_dir: owned by the agent's user; the sandbox clusters live in work.
  run install -d -m 0750 "$root/var/lib/restorewatch" "$root/var/cache/restorewatch"
  run install -d -m 0755 "$root/etc/restorewatch"
  if [ -z "$root" ] || [ "$(id -u)" = 0 ]; then
    if getent passwd restorewatch >/dev/null 2>&1; then
      run chown restorewatch:restorewatch "$root/var/lib/restorewatch" "$root/var/cache/restorewatch"
    fi
  fi
}

[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
case "$1" in
  packages) step_packages ;;
  package) [ $# -eq 2 ] || { echo "install.sh: package needs a .deb" >&2; exit 2; }; step_package "$2" ;;
  user) step_user ;;
  dirs) step_dirs "${2:-}" ;;
  all)
    [ $# -eq 2 ] || { echo "install.sh: all needs a .deb" >&2; exit 2; }
    step_packages; step_package "$2"; step_user; step_dirs
    run apt-get clean ;;
  *) echo "install.sh: unknown step '$1'" >&2; exit 2 ;;
esac
