# Sourced by the robustness scripts after scripts/cluster.sh and start_cluster.
# check NAME VALUE: a check passes when VALUE is 't'; `summary NAME` prints the closing line
# and returns non-zero if any failed. `helpers_sql` copies the SQL helpers (pg_regress's and
# the fuzz notes) where user postgres can read them and prints that path.
fails=0; checks=0
check() {
    checks=$((checks + 1))
    if [ "$2" = t ]; then echo "ok   $1"; else echo "FAIL $1 ($2)"; fails=$((fails + 1)); fi
}
summary() {
    echo "$1: $((checks - fails)) passed, $fails failed"
    return $((fails > 0))
}
helpers_sql() {
    cat tests/pg_regress/helpers.sql tests/robustness/notes.sql > "$PGDATA_DIR/helpers.sql"
    chown postgres "$PGDATA_DIR/helpers.sql"
    echo "$PGDATA_DIR/helpers.sql"
}
