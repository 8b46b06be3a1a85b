# Sourced by scripts/test.sh: start_postgres starts a throwaway PostgreSQL cluster in a
# temporary directory on a loopback port, exports REVCRM_TEST_POSTGRES_URL and stops the
# server when the shell exits. Outside CI a failure only leaves the URL unset (the
# PostgreSQL tests then skip with one line saying why); with CI=true it is fatal.

_pg_fail() {
  echo "postgres: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    echo "postgres: CI=true, so a missing PostgreSQL server is a failure" >&2
    exit 1
  fi
  export REVCRM_TEST_POSTGRES_SKIP_REASON="$*"
  return 0
}

_pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] && command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir)
  fi
  echo "$dir"
}

start_postgres() {
  if [ -n "${REVCRM_TEST_POSTGRES_URL:-}" ]; then
    echo "postgres: using REVCRM_TEST_POSTGRES_URL from the environment"
    return 0
  fi
  local bindir
  bindir=$(_pg_bindir)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "postgres: installing Debian's postgresql package"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
        || { _pg_fail "apt-get install postgresql failed"; return 0; }
      bindir=$(_pg_bindir)
    else
      _pg_fail "no PostgreSQL server binaries found (install Debian's postgresql package)"
      return 0
    fi
  fi
  PG_TMP=$(mktemp -d /tmp/revcrm-pg.XXXXXX)
  local run=()
  if [ "$(id -u)" = "0" ]; then
    # The server refuses to run as root: run it as the postgres user the package creates.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_TMP"
    run=(runuser -u postgres --)
  fi
  local port
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if ! "${run[@]}" "$bindir/initdb" -D "$PG_TMP/data" -A trust -U revcrm --no-sync -E UTF8 >"$PG_TMP/initdb.log" 2>&1; then
    cat "$PG_TMP/initdb.log" >&2
    _pg_fail "initdb failed"
    return 0
  fi
  if ! "${run[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $PG_TMP -F -c max_connections=50" start >/dev/null; then
    cat "$PG_TMP/server.log" >&2
    _pg_fail "pg_ctl start failed"
    return 0
  fi
  PG_BINDIR=$bindir
  trap 'stop_postgres' EXIT
  export REVCRM_TEST_POSTGRES_URL="postgresql+psycopg://revcrm@127.0.0.1:$port/postgres"
  echo "postgres: throwaway server on 127.0.0.1:$port ($PG_TMP)"
}

stop_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    local run=()
    [ "$(id -u)" = "0" ] && run=(runuser -u postgres --)
    "${run[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
