#!/usr/bin/env bash
# Rehydration benchmark (issues 4 and 11, "Benchmark (not a test)"): in one run, for
# each requested sample scale, generate a tenant (schema mode, or row mode
# with BENCH_ISOLATION=row: shared tables with a tenant column, in their own
# schema `tenant_shared`, loaded with row-level checks), export it
# (lite and native) and `pg_dump -Fc` it; then change the tenant and time
# `ferry rehydrate` (replace, confirmed at once) of each bundle — the whole
# workflow and its load phase (the `load` step's own elapsed time from the
# server log: delete, load and verify in one transaction) — against
# `pg_restore` of the same data into an empty
# database. Records wall times, ratios and peak RSS in
# bench/results/rehydrate-vs-pg_restore-<date>.md and prints it.
#
# Usage: bench/rehydrate-vs-pg_restore.sh [SCALE ...]   (205 ≈ 100 MB, 2050 ≈ 1 GB;
#        a scale given twice is measured twice, each time on a new tenant)
# Env:   as bench/export-vs-pg_dump.sh (PGHOST/PGPORT/PGUSER, FERRY_BIN);
#        BENCH_ISOLATION (schema, the default, or row; row results go to
#        rehydrate-vs-pg_restore-<date>-row.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scales=("$@")
[ ${#scales[@]} -gt 0 ] || scales=(205)
isolation=${BENCH_ISOLATION:-schema}
case "$isolation" in
  schema) schema=tenant_bench; suffix="" ;;
  row) schema=tenant_shared; suffix="-row"; export FERRY_TENANT_SHARED_SCHEMA=$schema ;;
  *) echo "BENCH_ISOLATION must be schema or row" >&2; exit 2 ;;
esac
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v pg_restore >/dev/null || { echo "pg_restore not found" >&2; exit 1; }
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sections=""
sections_steps=""
verdicts=""

for scale in "${scales[@]}"; do
  db="ferry_rbench_$$_$scale"
  target="ferry_rbench_$$_${scale}_restore"
  data="$scratch/data-$scale"
  mkdir -p "$data"
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  dbs+=("$db" "$target")
  export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" FERRY_TENANT_ISOLATION=$isolation FERRY_DATA_DIR="$data"
  [ "$isolation" = row ] && psql -qX -d "$db" -c "CREATE SCHEMA $schema" >/dev/null

  log "scale $scale: generating sample tenant in $db"
  "$FERRY" sample --tenant bench --scale "$scale" >"$data/sample.json" 2>"$data/sample.log"
  psql -qX -d "$db" -c "VACUUM ANALYZE" >/dev/null
  rows=$(psql -qXAt -d "$db" -c "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint) FROM pg_tables WHERE schemaname='$schema'")
  table_mb=$(calc "$(psql -qXAt -d "$db" -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='$schema' AND c.relkind='r'") / 1000000")
  log "scale $scale: $rows rows, $table_mb MB"

  dump="$scratch/bench-$scale.dump"
  pg_dump -Fc -n "$schema" -f "$dump" "$db"

  port=$(free_port)
  start_server "$data" "$port"
  declare -A bundle=()
  for profile in lite native; do
    "$FERRY" export --tenant bench --profile "$profile" --wait --url "http://127.0.0.1:$port" >"$data/export-$profile.out" 2>/dev/null
    id=$(sed -n '/^{/,$p' "$data/export-$profile.out" | jq -r .id)
    bundle[$profile]=$(find "$data/objects/exports/bench/$id" -name '*.zip' | head -1)
  done
  stop_server

  # ---- pg_restore baseline: the same data into an empty database ----
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $target" -c "CREATE DATABASE $target" >/dev/null
  log "scale $scale: pg_restore"
  # Each timed run starts after a checkpoint, so none pays for the WAL of
  # what came before it (the sample, the exports).
  psql -qX -d postgres -c CHECKPOINT >/dev/null
  timed pg_restore --no-owner -d "$target" "$dump"
  restore_s=$elapsed
  restore_rss=$peak_kb
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $target WITH (FORCE)" >/dev/null

  rows_md="| \`pg_restore --no-owner\` into an empty database | $restore_s | – | $restore_s | $(calc "$restore_rss / 1024" %.1f) | 1.00× | 1.00× |"$'\n'
  declare -A import_ratio=() whole_ratio=() rss_mib=()
  for profile in lite native; do
    # Replace mode deletes every row and loads the bundle's, whether or not
    # they differ, so the tenant as it is serves as "the current data".
    port=$(free_port)
    start_server "$data" "$port"
    log "scale $scale: ferry rehydrate ${bundle[$profile]##*/} ($profile)"
    psql -qX -d postgres -c CHECKPOINT >/dev/null
    t0=$(now)
    "$FERRY" rehydrate "${bundle[$profile]}" --tenant bench --confirm DELETE --url "http://127.0.0.1:$port" >"$data/rehydrate-$profile.out" 2>"$data/rehydrate-$profile.err"
    t1=$(now)
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")
    stop_server
    status_json=$(sed -n '/^{/,$p' "$data/rehydrate-$profile.out")
    st=$(jq -r .status <<<"$status_json")
    [ "$st" = completed ] || { echo "rehydrate $profile ended $st" >&2; cat "$data/rehydrate-$profile.out" "$data/rehydrate-$profile.err" >&2; exit 1; }
    id=$(jq -r .id <<<"$status_json")
    whole=$(calc "$t1 - $t0" %.3f)
    import_s=$(calc "$(step_ms "$data/serve.log" "$id" load) / 1000" %.3f)
    import_ratio[$profile]=$(calc "$import_s / $restore_s" %.2f)
    whole_ratio[$profile]=$(calc "$whole / $restore_s" %.2f)
    rss_mib[$profile]=$(calc "$hwm / 1024" %.1f)
    rows_md+="| ferry rehydrate ($profile bundle) | $whole | $import_s | $(calc "$rows / $import_s" %.0f) rows/s | $(calc "$hwm / 1024" %.1f) | $(calc "$whole / $restore_s" %.2f)× | ${import_ratio[$profile]}× |"$'\n'
    steps=$(step_times "$data/serve.log" "$id")
    sections_steps+="- $profile: $steps"$'\n'
  done

  limit=2.0
  [ "$isolation" = row ] && limit=3.0
  if awk "BEGIN { exit !(${whole_ratio[lite]} <= $limit && ${rss_mib[lite]} <= 100) }"; then ok="**holds**"; else ok="**does not hold**"; fi
  sections+="### Scale $scale — $table_mb MB of table data, $rows rows

| what | whole s | load phase s | load rate | peak RSS MiB | whole × pg_restore | load × pg_restore |
|---|---:|---:|---:|---:|---:|---:|
$rows_md
The whole rehydration includes receive, validation of every row and key, preview (with its trial load for bundles up to FERRY_REHYDRATE_TRIAL_ROWS_MAX rows), the backup (a full lite export, read back and verified), the load (delete, load, bulk constraint checks and verification of every table's content hash, in one transaction) and reactivation; pg_restore does only the load (and builds indexes). Peak RSS: the ferry server's \`VmHWM\`, the \`pg_restore\` client's max RSS (\`/usr/bin/time -v\`); PostgreSQL backends are not counted for either.

Steps (elapsed per step):

${sections_steps}
Target (issue 11): whole rehydration ≤ ${limit}× pg_restore ($isolation isolation) and peak RSS ≤ 100 MiB — lite ${whole_ratio[lite]}× (${rss_mib[lite]} MiB), native ${whole_ratio[native]}× (${rss_mib[native]} MiB) → $ok (lite). Load phase alone: lite ${import_ratio[lite]}×, native ${import_ratio[native]}×.

"
  verdicts+="- scale $scale ($table_mb MB): whole/pg_restore lite ${whole_ratio[lite]}×, native ${whole_ratio[native]}× (target ≤ ${limit}×, RSS ≤ 100 MiB) → $ok"$'\n'
  sections_steps=""
  unset bundle import_ratio whole_ratio rss_mib
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  rm -rf "$data"
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
date=$(date -u +%Y-%m-%d)
out="bench/results/rehydrate-vs-pg_restore-$date$suffix.md"
mkdir -p bench/results
{
  echo "# ferry rehydrate vs pg_restore — $date"
  echo
  echo "Command: \`${BENCH_ISOLATION:+BENCH_ISOLATION=$isolation }bench/rehydrate-vs-pg_restore.sh ${scales[*]}\` (started $started)"
  echo
  echo "## Machine"
  echo
  echo "- CPU: $machine_model, nproc $machine_cpus; memory $machine_mem"
  echo "- Load average (1/5/15 min): before $load_before, after $load_after"
  echo "- PostgreSQL $pg_version at $PGHOST:$PGPORT; $(pg_restore --version); $ferry_version"
  echo "- One run per tool and size (no repetition); $isolation isolation (tables in \`$schema\`)."
  echo
  echo "## Target (issue 11)"
  echo
  echo "The whole rehydration (receive → reactivate, backup included) ≤ 2.0× pg_restore of the same data in schema isolation, ≤ 3.0× in row isolation, at 1 GB; peak RSS ≤ 100 MiB."
  echo
  printf '%s' "$verdicts"
  echo
  echo "## Results"
  echo
  printf '%s' "$sections"
} >"$out"
cat "$out"
echo "wrote $out" >&2
