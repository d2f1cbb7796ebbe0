# Sourced by scripts and benchmarks: a throw-away PostgreSQL cluster run as user postgres,
# unix socket only, stopped and removed on exit. After `start_cluster PORT [postgres -c ...]`:
# $PGDATA_DIR, $PG_PORT and `cluster_psql ARGS` (psql as postgres on it). Lines in $CLUSTER_CONF
# go to postgresql.conf (unlike -c options, ALTER SYSTEM can override them).
# The PostgreSQL is the one of $BIOMED_NER_PG_CONFIG (a pg_config), by default Debian's 15; for
# 18, the one scripts/setup --pg18 unpacks (scripts/pg18-config prints its pg_config).
PG_CONFIG=${BIOMED_NER_PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
PG_MAJOR=$("$PG_CONFIG" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')

start_cluster() {
    PG_PORT=$1; shift
    PGDATA_DIR=$(mktemp -d /tmp/biomed-ner-pg.XXXXXX)
    chown postgres:postgres "$PGDATA_DIR"; chmod 700 "$PGDATA_DIR"
    trap stop_cluster EXIT
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --locale=C.UTF-8 >/dev/null
    [ -z "${CLUSTER_CONF:-}" ] || printf '%s\n' "$CLUSTER_CONF" >>"$PGDATA_DIR/postgresql.conf"
    # The postmaster's environment is every backend's: no Rust backtraces in client errors.
    runuser -u postgres -- env -u RUST_BACKTRACE RAYON_NUM_THREADS="${CLUSTER_THREADS:-2}" OMP_NUM_THREADS="${CLUSTER_THREADS:-2}" \
        "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PGDATA_DIR -c listen_addresses='' $*" start >/dev/null
}

stop_cluster() {
    [ -n "${PGDATA_DIR:-}" ] || return 0
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA_DIR"
}

cluster_psql() {
    runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$PGDATA_DIR" -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@"
}
