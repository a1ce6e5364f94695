#!/usr/bin/env bash
# A throwaway PostgreSQL server on localhost for the results-history tests
# (tests/test_history_db.py), which run every test on SQLite and on PostgreSQL.
#
#   eval "$(.ci/postgres.sh start)"     start one; exports XFBENCH_TEST_PG_URL and
#                                       XFBENCH_TEST_PG_DIR into this shell
#   source .ci/postgres.sh              the same, sourced
#   .ci/postgres.sh stop [DIR]          stop it and delete its folder (DIR: default
#                                       $XFBENCH_TEST_PG_DIR)
#
# The server lives in a temporary folder (data, log, unix socket), listens on 127.0.0.1
# only, trusts local connections (no password) and runs with fsync off: a test fixture,
# never a place for data. Port: $XFBENCH_TEST_PG_PORT, else the first free one from
# 54329. Its binaries: Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin),
# installed with apt-get where missing and this runs as root, or any `initdb`/`pg_ctl` on
# PATH. As root (CI machines) the server runs as the `postgres` user, since PostgreSQL
# refuses to run as root; as anyone else, as that user. Only what `start` prints goes to
# stdout (export lines to eval); everything else goes to stderr.

_xfbench_pg_main() {
  set -euo pipefail

  say() { echo "postgres.sh: $*" >&2; }

  find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
      [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
      dirname "$(command -v initdb)"
      return 0
    fi
    return 1
  }

  # Run a PostgreSQL program as the server's owner (root may not run the server).
  as_owner() {
    if [ "$(id -u)" = 0 ]; then
      runuser -u postgres -- "$@"
    else
      "$@"
    fi
  }

  port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  }

  start() {
    local bindir
    if ! bindir=$(find_bindir); then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's postgresql package"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          postgresql >&2
        bindir=$(find_bindir) || { say "error: postgresql installed but no initdb found"; exit 1; }
      else
        say "error: no PostgreSQL server found (initdb, pg_ctl): install Debian's postgresql" \
          "package (apt-get install postgresql) or put a PostgreSQL bin/ folder on PATH"
        exit 1
      fi
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi

    local port=${XFBENCH_TEST_PG_PORT:-}
    if [ -z "$port" ]; then
      for port in $(seq 54329 54399); do
        port_free "$port" && break
      done
    fi
    port_free "$port" || { say "error: port $port is taken; set XFBENCH_TEST_PG_PORT"; exit 1; }

    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/xfbench-pg.XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1 \
      || { say "error: initdb failed:"; tail -20 "$dir/initdb.log" >&2; exit 1; }
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >&2; then
      say "error: the server did not start; its log:"
      tail -20 "$dir/server.log" >&2
      exit 1
    fi
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres xfbench_test >&2 \
      || as_owner "$bindir/createdb" -h "$dir" -p "$port" -U postgres xfbench_test >&2
    say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" \
      "(folder $dir); stop it with: .ci/postgres.sh stop $dir"
    echo "export XFBENCH_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$port/xfbench_test"
    echo "export XFBENCH_TEST_PG_DIR=$dir"
  }

  stop() {
    local dir=${1:-${XFBENCH_TEST_PG_DIR:-}}
    if [ -z "$dir" ]; then
      say "error: which server? give its folder (.ci/postgres.sh stop DIR) or set XFBENCH_TEST_PG_DIR"
      exit 2
    fi
    case "$dir" in
      */xfbench-pg.*) ;;
      *) say "error: $dir is not a folder this script made (xfbench-pg.*); not touching it"; exit 2 ;;
    esac
    if [ -d "$dir/data" ]; then
      local bindir
      bindir=$(find_bindir) || { say "error: no pg_ctl found to stop $dir"; exit 1; }
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    say "stopped and removed $dir"
  }

  case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *)
      echo "usage: eval \"\$(.ci/postgres.sh start)\"  |  .ci/postgres.sh stop [DIR]" >&2
      exit 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start a server in a child shell (its `set -e` stays out of this one) and
  # take its exports.
  if _xfbench_pg_exports=$(bash "${BASH_SOURCE[0]}" start); then
    eval "$_xfbench_pg_exports"
  fi
  unset _xfbench_pg_exports
  unset -f _xfbench_pg_main
else
  _xfbench_pg_main "$@"
fi
