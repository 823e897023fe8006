#!/usr/bin/env bash
# The benchmark of issue 7 in one command: builds the release binaries, seeds a fresh
# PostgreSQL database and a fresh SQLite file, serves each with `rkflow serve` (release), runs
# W1–W4 at each concurrency, the raw-SQL baseline of W1–W3 with pgbench on the same data, and
# writes the figures to $OUT/results.jsonl and $OUT/results.md. See BENCHMARKS.md.
#
# Settings (environment):
#   N=2000               investigations to seed
#   DURATION=20          seconds measured per run (after WARMUP=2 seconds)
#   CONCURRENCY="1 16"   concurrencies
#   BACKENDS="postgres sqlite"
#   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres   (a role that may create databases)
#   PG_LOG=…             the PostgreSQL server log (for capturing the statements of W1–W3);
#                        default: /var/log/postgresql/postgresql-*-main.log
#   PG_POOL=             the server's PostgreSQL pool (RKFLOW_DB_MAX_CONNECTIONS); default: the
#                        server's own (twice the cores, 4-32). SQLite keeps its default (4).
#   OUT=target/bench/<timestamp>
#   BIN=                 a directory with `rkflow` and `rkflow-bench` to measure instead of
#                        building this checkout (to compare two builds on one machine)
#   REUSE_SEED=1         keep a PostgreSQL database and a SQLite file seeded earlier with the
#                        same N and SEED (rkflow_bench_<N>, target/bench/sqlite-<N>-<SEED>.db,
#                        each with a finished seed) instead of seeding afresh
#
# The seeded database and file are never written by a run: each run works on a copy of them
# (rkflow_bench_<N>_run, $OUT/sqlite-run.db; removed at the end), so every run starts from the
# same population. W3 adds tens of versions to each investigation it writes to, and a command
# costs more the more versions its investigation has (BENCHMARKS.md).
set -euo pipefail

N=${N:-2000}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-"1 16"}
BACKENDS=${BACKENDS:-"postgres sqlite"}
SEED=${SEED:-2019}
PG_POOL=${PG_POOL:-}
PORT=${PORT:-18080}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PG_DB=rkflow_bench_${N}
# What a run serves and writes: a copy of the seeded database, made at the start of the run.
RUN_DB=${PG_DB}_run
# pgbench replays on a copy of that, made after the capture: its W3 inserts versions behind
# rkflow's back (the captured snapshot and audit rows, replayed as captured, no longer match),
# which would leave a database unfit for rkflow's W3.
RAW_DB=${PG_DB}_raw
PG_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${PG_DB}"
RUN_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${RUN_DB}"

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
# A finished SQLite seed leaves its summary beside the file.
SQLITE_FILE=$ROOT/target/bench/sqlite-${N}-${SEED}.db
SQLITE_SUMMARY=$SQLITE_FILE.summary
mkdir -p "$(dirname "$SQLITE_FILE")"

for tool in psql pgbench curl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 1; }
done

info() {
  echo "$*"
  printf '{"kind":"info","text":"%s"}\n' "$(echo "$*" | sed 's/"/\\"/g')" >> "$RESULTS"
}

if [ -n "${BIN:-}" ]; then
  echo "== using the binaries in $BIN"
else
  echo "== building (release)"
  cargo build --release -p rkflow -p rkflow-bench
  BIN=$ROOT/target/release
fi

info "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
info "PostgreSQL: $(psql -d postgres -Atc 'show server_version') (shared_buffers $(psql -d postgres -Atc 'show shared_buffers')); $(rustc --version)"
info "N=$N investigations, seed $SEED, ${DURATION} s per run after ${WARMUP} s warm-up, concurrency: $CONCURRENCY, PostgreSQL pool ${PG_POOL:-default} connections (SQLite 4)"

SERVER_PID=
start_server() { # url [pool]
  RKFLOW_LOG=warn env ${2:+RKFLOW_DB_MAX_CONNECTIONS=$2} "$BIN/rkflow" serve --database-url "$1" --listen "127.0.0.1:$PORT" \
    > "$OUT/server-$LABEL.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      info "$LABEL pool: $(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "rkflow_db_pool_max_connections" {print $2}') connections"
      return 0
    fi
    sleep 0.05
  done
  echo "run.sh: the server did not get ready" >&2
  exit 1
}
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
drop_copies() {
  psql -d postgres -qc "DROP DATABASE IF EXISTS $RAW_DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql -d postgres -qc "DROP DATABASE IF EXISTS $RUN_DB WITH (FORCE)" >/dev/null 2>&1 || true
}
SQLITE_RUN=$OUT/sqlite-run.db
trap 'stop_server; [[ " $BACKENDS " == *" postgres "* ]] && drop_copies; rm -f "$SQLITE_RUN" "$SQLITE_RUN-wal" "$SQLITE_RUN-shm"' EXIT

load() { # workload concurrency [extra args]
  local w=$1 c=$2
  shift 2
  "$BIN/rkflow-bench" load --url "http://127.0.0.1:$PORT" --workload "$w" --concurrency "$c" \
    --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" --label "$LABEL" \
    --json-out "$RESULTS" "$@"
}

pgbench_run() { # workload concurrency
  local w=$1 c=$2 files=() jobs=$(( $2 < 2 ? $2 : 2 ))
  for f in "$OUT"/pgbench/"$w"_*.sql; do files+=(-f "$f"); done
  # PostgreSQL's CPU over the run (all its processes), and pgbench's own (`times` in the
  # subshell: its last line is the CPU of the subshell's children, i.e. pgbench).
  local output pg_before pg_after
  pg_before=$("$BIN/rkflow-bench" postgres-cpu)
  output=$(pgbench -n -M prepared -c "$c" -j "$jobs" -T "$DURATION" "${files[@]}" "$RAW_DB" 2>&1 && times) || {
    echo "$output" >&2
    exit 1
  }
  sleep 0.5 # the postmaster has waited for pgbench's backends (their CPU is then its children's)
  pg_after=$("$BIN/rkflow-bench" postgres-cpu)
  local tps latency failed count pg_ms own_ms
  tps=$(echo "$output" | awk '/^tps = / {print $3; exit}')
  latency=$(echo "$output" | awk '/^latency average = / {print $4; exit}')
  failed=$(echo "$output" | awk '/^number of failed transactions/ {print $5; exit}')
  count=$(echo "$output" | awk '/^number of transactions actually processed/ {print $6; exit}')
  pg_ms=$(awk -v a="$pg_before" -v b="$pg_after" -v n="$count" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
  own_ms=$(echo "$output" | tail -1 | awk -v n="$count" '{
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.3f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 / n }')
  echo "raw SQL $w c=$c: $tps tx/s, average latency $latency ms, failed ${failed:-0}, postgres CPU $pg_ms ms/tx, pgbench CPU $own_ms ms/tx"
  printf '{"kind":"pgbench","label":"%s","workload":"%s","concurrency":%s,"tps":%s,"latency_ms":%s,"failed":%s,"postgres_cpu_ms_per_tx":%s,"pgbench_cpu_ms_per_tx":%s}\n' \
    "$LABEL" "$w" "$c" "$tps" "$latency" "${failed:-0}" "$pg_ms" "$own_ms" >> "$RESULTS"
}

for LABEL in $BACKENDS; do
  case $LABEL in
  postgres)
    PG_LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -1)}
    [ -r "$PG_LOG" ] || { echo "run.sh: set PG_LOG to the PostgreSQL server log" >&2; exit 1; }
    # A finished seed leaves its summary as the database's comment (N, SEED and the seed's
    # own first line), so a reused database is known to hold exactly this population.
    seeded=$(psql -d postgres -Atc "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$PG_DB'")
    if [ "${REUSE_SEED:-0}" = 1 ] && [[ "$seeded" == "N=$N SEED=$SEED "* ]]; then
      echo "== postgres: reusing $PG_DB"
      info "postgres seed (reused): ${seeded#N=$N SEED=$SEED }"
    else
      echo "== postgres: seeding $PG_DB"
      psql -d postgres -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB"
      "$BIN/rkflow-bench" seed --database-url "$PG_URL" --investigations "$N" --seed "$SEED" --jobs 4 | tee "$OUT/seed-postgres.txt"
      info "postgres seed: $(head -1 "$OUT/seed-postgres.txt")"
      psql -d "$PG_DB" -qc "VACUUM ANALYZE"
      psql -d postgres -qc "COMMENT ON DATABASE $PG_DB IS 'N=$N SEED=$SEED $(head -1 "$OUT/seed-postgres.txt" | sed "s/'//g")'"
    fi
    drop_copies
    psql -d postgres -qc "CREATE DATABASE $RUN_DB TEMPLATE $PG_DB"
    echo "== postgres: statements per request (and capturing them for pgbench)"
    psql -d postgres -qc "ALTER DATABASE $RUN_DB SET log_statement = 'all'"
    offset=$(stat -c %s "$PG_LOG")
    "$BIN/rkflow-bench" statements --database-url "$RUN_URL" --label "$LABEL" --json-out "$RESULTS" --pg-marks
    psql -d postgres -qc "ALTER DATABASE $RUN_DB RESET log_statement"
    sleep 1
    "$BIN/rkflow-bench" pgbench-scripts --log "$PG_LOG" --offset "$offset" --out-dir "$OUT/pgbench"
    psql -d postgres -qc "CREATE DATABASE $RAW_DB TEMPLATE $RUN_DB"
    echo "== postgres: load"
    start_server "$RUN_URL" "$PG_POOL"
    for w in w1 w2 w3; do
      for c in $CONCURRENCY; do load "$w" "$c" --postgres-cpu; done
      for c in $CONCURRENCY; do pgbench_run "$w" "$c"; done
    done
    for c in $CONCURRENCY; do load w4 "$c" --postgres-cpu; done
    stop_server
    drop_copies
    ;;
  sqlite)
    if [ "${REUSE_SEED:-0}" = 1 ] && [ -s "$SQLITE_SUMMARY" ] && [ -f "$SQLITE_FILE" ]; then
      echo "== sqlite: reusing $SQLITE_FILE"
      info "sqlite seed (reused): $(head -1 "$SQLITE_SUMMARY")"
    else
      echo "== sqlite: seeding $SQLITE_FILE"
      rm -f "$SQLITE_FILE" "$SQLITE_FILE-wal" "$SQLITE_FILE-shm" "$SQLITE_SUMMARY"
      "$BIN/rkflow-bench" seed --database-url "$SQLITE_FILE" --investigations "$N" --seed "$SEED" --jobs 1 | tee "$OUT/seed-sqlite.txt"
      cp "$OUT/seed-sqlite.txt" "$SQLITE_SUMMARY"
      info "sqlite seed: $(head -1 "$OUT/seed-sqlite.txt")"
    fi
    rm -f "$SQLITE_RUN" "$SQLITE_RUN-wal" "$SQLITE_RUN-shm"
    cp "$SQLITE_FILE" "$SQLITE_RUN"
    # A write-ahead log left beside the file (a server that did not close) belongs to it.
    if [ -f "$SQLITE_FILE-wal" ]; then cp "$SQLITE_FILE-wal" "$SQLITE_RUN-wal"; fi
    echo "== sqlite: start-up time"
    "$BIN/rkflow-bench" startup --rkflow "$BIN/rkflow" --database-url "$SQLITE_RUN" --runs 5 --label "$LABEL" --json-out "$RESULTS"
    echo "== sqlite: statements per request"
    "$BIN/rkflow-bench" statements --database-url "$SQLITE_RUN" --label "$LABEL" --json-out "$RESULTS"
    echo "== sqlite: load"
    start_server "$SQLITE_RUN"
    for w in w1 w2 w3 w4; do
      for c in $CONCURRENCY; do load "$w" "$c"; done
    done
    stop_server
    ;;
  *) echo "run.sh: unknown backend $LABEL" >&2; exit 1 ;;
  esac
done

"$BIN/rkflow-bench" report "$RESULTS" | tee "$OUT/results.md"
echo "results: $OUT/results.md"
