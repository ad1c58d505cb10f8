# Writes restorewatch(1) from the binary's own help text, so the man page can never drift from
# `restorewatch --help` (agent/runtime/cli.cpp). Run at build time by the `restorewatch_man` target:
#   cmake -DRW_EXE=path/to/restorewatch -DRW_VERSION=0.1.0 -DOUT=restorewatch.1 -P gen-man.cmake
# Every help text is kept verbatim in a no-fill block; only roff's special characters are escaped.
cmake_minimum_required(VERSION 3.18)
foreach(v RW_EXE RW_VERSION OUT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "gen-man.cmake: -D${v}=... is required")
  endif()
endforeach()

function(rw_help out)
  execute_process(COMMAND ${RW_EXE} ${ARGN} --help
    OUTPUT_VARIABLE text RESULT_VARIABLE rc TIMEOUT 20)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "gen-man.cmake: '${RW_EXE} ${ARGN} --help' failed (${rc})")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# roff: a backslash is \e, a minus is \-, and a line may not start with . or ' (a request).
function(rw_roff out text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

rw_help(main)
# First line: "restorewatch: WHAT IT DOES"; the rest is the usage and the exit codes.
string(FIND "${main}" "\n" nl)
string(SUBSTRING "${main}" 0 ${nl} first)
string(SUBSTRING "${main}" ${nl} -1 rest)
string(REGEX REPLACE "^restorewatch: " "" what "${first}")
rw_roff(what "${what}")
rw_roff(rest "${rest}")
string(REGEX REPLACE "^\n+" "" rest "${rest}")

set(page ".\\\" Generated from `restorewatch --help` by deploy/man/gen-man.cmake; do not edit.
.TH RESTOREWATCH 1 \"\" \"restorewatch ${RW_VERSION}\" \"User Commands\"
.SH NAME
restorewatch \\- ${what}
.SH SYNOPSIS
.nf
${rest}
.fi
.SH DESCRIPTION
restorewatch proves PostgreSQL backups can be restored: on a schedule it restores the newest backup
into a throwaway cluster (or a scratch server), compares the copy with the live source, and between
drills watches WAL archiving, replication, slots and standbys. Everything is exported as Prometheus
metrics on \\fB/metrics\\fR, a JSON API and reports.
.SH COMMANDS
")
foreach(verb run verify check-config history runbook dump demo)
  rw_help(h ${verb})
  rw_roff(h "${h}")
  string(APPEND page ".SS ${verb}\n.nf\n${h}\n.fi\n")
endforeach()
string(APPEND page ".SH HTTP
.TP
.B /metrics
Prometheus text format.
.TP
.B /healthz
200 while the process is alive.
.TP
.B /readyz
200 once the config is loaded and every collector ran once, else 503.
.TP
.B /api/v1/status
JSON status of every target.
.SH FILES
.TP
.I /etc/restorewatch/restorewatch.toml
the configuration read by the systemd unit (\\fBrestorewatch.service\\fR).
.TP
.I /usr/share/doc/restorewatch/examples/example.toml
every configuration key with its default and meaning.
.TP
.I /var/lib/restorewatch
state_dir: drill history and table-activity samples.
.TP
.I /var/cache/restorewatch
work_dir: restore sandboxes.
.TP
.I /usr/share/restorewatch/alerts.yml, /usr/share/restorewatch/restorewatch.json
Prometheus alerting rules and the Grafana dashboard.
.TP
.I /usr/share/doc/restorewatch/runbooks/
one page per alert.
.SH SIGNALS
SIGHUP reloads the configuration; SIGTERM and SIGINT stop gracefully.
.SH SEE ALSO
.BR pg_dump (1),
.BR pg_restore (1),
.BR systemctl (1)
")
file(WRITE "${OUT}.tmp" "${page}")
file(RENAME "${OUT}.tmp" "${OUT}")
