#!/usr/bin/env bash
# The packages of scripts/package install and work where the extension was never built: the
# files `cargo pgrx install` put into PostgreSQL 15 (and each other major named) are moved aside,
# the .deb is installed with apt (each tarball unpacked into its PostgreSQL's folder), a server is
# started, and CREATE EXTENSION and one query must work. Then the package is removed and the moved
# files come back. Run as root after `scripts/package pg15 [pgN ...]` (scripts/test builds each
# right after the install of the same version, so nothing is compiled twice).
#   tests/package.sh [--pg16] [--pg17] [--pg18]
set -euo pipefail
cd "$(dirname "$0")/.."
pass=0; fail=0
check() { if [ "$2" = t ]; then echo "ok   $1"; pass=$((pass + 1)); else echo "FAIL $1 (got '$2')"; fail=$((fail + 1)); fi; }
VERSION=$(cargo pkgid -p biomed_ner | sed 's/.*[#@]//'); ARCH=$(dpkg --print-architecture)
deb=target/package/postgresql-15-biomed-ner_${VERSION}_$ARCH.deb
majors=()
for arg in "$@"; do majors+=("${arg#--pg}"); done
tarball() { echo "target/package/biomed_ner-$VERSION-pg$1-$ARCH.tar.gz"; }
for f in "$deb" $(for m in "${majors[@]}"; do tarball "$m"; done); do
    [ -f "$f" ] || { echo "tests/package.sh: $f is missing: run scripts/package pg15 ${majors[*]/#/pg} first" >&2; exit 2; }
done

aside=$(mktemp -d /tmp/biomed-ner-package.XXXXXX)
restore() {
    dpkg -r postgresql-15-biomed-ner >/dev/null 2>&1 || true
    for d in "$aside"/*/; do [ -d "$d" ] && cp -a "$d." / || true; done
    rm -rf "$aside"
}
trap restore EXIT
move_aside() { # NAME PG_CONFIG: move the installed extension's files to $aside/NAME
    local lib share; lib=$("$2" --pkglibdir); share=$("$2" --sharedir)/extension
    mkdir -p "$aside/$1$lib" "$aside/$1$share"
    mv "$lib"/biomed_ner.so "$aside/$1$lib/"
    mv "$share"/biomed_ner[.-]* "$aside/$1$share/"
}
query() { # PG_CONFIG PORT: CREATE EXTENSION and one note through the bundled model
    (
        export BIOMED_NER_PG_CONFIG=$1
        . scripts/cluster.sh
        start_cluster "$2"
        cluster_psql -d postgres -Atc "CREATE EXTENSION biomed_ner" \
            -c "SELECT extversion = '$VERSION' AND jsonb_array_length(biomed_ner('Squamous cell carcinoma of the cervix with fever.')) > 0
                FROM pg_extension WHERE extname = 'biomed_ner'" 2>&1 | tail -1
    )
}

PG15=/usr/lib/postgresql/15/bin/pg_config
move_aside 15 "$PG15"
check "PostgreSQL 15: no biomed_ner left before the package" "$([ ! -e "$("$PG15" --pkglibdir)/biomed_ner.so" ] && echo t)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
check "PostgreSQL 15: $(basename "$deb") installed by apt" "$(dpkg -s postgresql-15-biomed-ner 2>/dev/null | grep -q '^Status: install ok installed' && echo t)"
check "PostgreSQL 15: CREATE EXTENSION and a query from the package" "$(query "$PG15" 54391)"

port=54392
for major in "${majors[@]}"; do
    config=$(scripts/pg-config "$major")
    move_aside "$major" "$config"
    tar -C "$(dirname "$config")/.." -xzf "$(tarball "$major")"
    check "PostgreSQL $major: CREATE EXTENSION and a query from $(basename "$(tarball "$major")")" "$(query "$config" $port)"
    rm -f "$("$config" --pkglibdir)/biomed_ner.so" "$("$config" --sharedir)"/extension/biomed_ner[.-]*
    port=$((port + 1))
done
echo "package: $pass passed, $fail failed"
((fail == 0))
