#!/usr/bin/env bash
# A small tenant's export alone in its database and beside N other tenant
# schemas (issue 13, item 7: an export's fixed cost must not grow with the
# number of other tenants), with `pg_dump -n` of the same schema in the
# same run. Schema isolation, release build, the local PostgreSQL.
#
# Usage: bench/many-tenants.sh [N ...]     (default: 2000)
# Each N gets a database with N schemas `other_<i>` of 10 tables (one
# foreign key each) beside the tenant `acme` (`ferry sample --scale 1`);
# "alone" is `acme` in a fresh database. Every figure is the median of
# ROUNDS (default 3) runs: exports timed by the server's own record
# (completedAt − requestedAt), plan and snapshot by the steps' elapsed_ms,
# pg_dump as a process. Writes bench/results/many-tenants-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
counts=("${@:-2000}")
rounds="${ROUNDS:-3}"
command -v jq >/dev/null || { echo "many-tenants.sh: jq is needed" >&2; exit 1; }

# N schemas of 10 tables each, committed every 100 schemas (a transaction
# may hold only so many locks).
crowd() { # $1 = database, $2 = N
  psql -qX -d "$1" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$
BEGIN
  FOR i IN 1..$2 LOOP
    EXECUTE format('CREATE SCHEMA other_%s', i);
    EXECUTE format('CREATE TABLE other_%s.t0 (id serial PRIMARY KEY, name text NOT NULL)', i);
    FOR j IN 1..9 LOOP
      EXECUTE format('CREATE TABLE other_%s.t%s (id serial PRIMARY KEY, parent int REFERENCES other_%s.t0 (id), v text)', i, j, i);
    END LOOP;
    IF i % 100 = 0 THEN COMMIT; END IF;
  END LOOP;
END
\$\$;
SQL
}

# One database: acme sampled, then ROUNDS of (pg_dump -n, lite, native).
# Prints "pg_dump lite lite_plan lite_snapshot native native_plan native_snapshot" medians.
measure() { # $1 = database, $2 = label
  local db=$1 data="$scratch/data-$2" port st id
  mkdir -p "$data"
  export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" FERRY_TENANT_ISOLATION=schema FERRY_DATA_DIR="$data"
  "$FERRY" sample --tenant acme --scale 1 >/dev/null 2>"$data/sample.log"
  psql -qX -d "$db" -c "VACUUM ANALYZE" >/dev/null
  port=$(free_port)
  start_server "$data" "$port"
  local pg=() lite=() lplan=() lsnap=() native=() nplan=() nsnap=()
  for r in $(seq "$rounds"); do
    log "$2: round $r"
    timed pg_dump -Fc -n tenant_acme -f "$data/acme.dump" "$db"
    pg+=("$elapsed")
    for profile in lite native; do
      st=$(export_and_wait "$port" "{\"profile\": \"$profile\"}" acme)
      [ "$(jq -r .status <<<"$st")" = completed ] || { echo "$2: $profile ended $st" >&2; exit 1; }
      id=$(jq -r .id <<<"$st")
      local w p s
      w=$(span_s "$(jq -r .requestedAt <<<"$st")" "$(jq -r .completedAt <<<"$st")")
      p=$(step_ms "$data/serve.log" "$id" plan)
      s=$(step_ms "$data/serve.log" "$id" snapshot)
      if [ "$profile" = lite ]; then lite+=("$w"); lplan+=("$p"); lsnap+=("$s"); else native+=("$w"); nplan+=("$p"); nsnap+=("$s"); fi
    done
  done
  stop_server
  echo "$(median "${pg[@]}") $(median "${lite[@]}") $(median "${lplan[@]}") $(median "${lsnap[@]}") $(median "${native[@]}") $(median "${nplan[@]}") $(median "${nsnap[@]}")"
}

new_db() { # $1 = name
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  dbs+=("$1")
}

new_db "ferry_bench_$$_alone"
log "alone: acme in a fresh database"
read -r a_pg a_lite a_lplan a_lsnap a_native a_nplan a_nsnap <<<"$(measure "ferry_bench_$$_alone" alone)"
rows_md="| alone | fresh database | $a_pg | $a_lite (plan $a_lplan + snapshot $a_lsnap ms) | $a_native (plan $a_nplan + snapshot $a_nsnap ms) | 1.00× | 1.00× |"
for n in "${counts[@]}"; do
  db="ferry_bench_$$_n$n"
  new_db "$db"
  log "beside $n: creating $n schemas of 10 tables"
  t0=$(now)
  crowd "$db" "$n"
  log "beside $n: created in $(calc "$(now) - $t0" %.0f) s"
  relations=$(psql -qXAt -d "$db" -c "SELECT count(*) FROM pg_class")
  read -r c_pg c_lite c_lplan c_lsnap c_native c_nplan c_nsnap <<<"$(measure "$db" "n$n")"
  rows_md+=$'\n'"| beside $n schemas | $relations rows in pg_class | $c_pg | $c_lite (plan $c_lplan + snapshot $c_lsnap ms) | $c_native (plan $c_nplan + snapshot $c_nsnap ms) | $(calc "$c_lite / $a_lite")× | $(calc "$c_native / $a_native")× |"
done

date=$(date -u +%Y-%m-%d)
out="bench/results/many-tenants-$date-script.md"
{
  echo "# A small tenant's export beside many other tenants, $date (bench/many-tenants.sh)"
  echo
  echo "- CPU: $machine_model, nproc $machine_cpus; memory $machine_mem; load before: $load_before"
  echo "- PostgreSQL $pg_version, $(pg_dump --version); $ferry_version (release build)"
  echo "- Tenant \`acme\` (\`ferry sample --scale 1\`), schema isolation; other tenants: schemas of 10 tables with one foreign key each."
  echo "- Medians of $rounds rounds; exports by the server's own record (completedAt − requestedAt, seconds), steps by their elapsed_ms."
  echo
  echo "| database | catalog | pg_dump -n (s) | lite (s) | native (s) | lite vs alone | native vs alone |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  echo "$rows_md"
  echo
  echo "Target (issue 13): lite ≤ 1.2× its time alone beside 10,000 tenants."
} > "$out"
cat "$out"
