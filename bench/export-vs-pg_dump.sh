#!/usr/bin/env bash
# Export benchmark (issue 3, "Benchmark (not a test)"): in one run, for each
# requested sample scale, generate a schema-mode tenant in a fresh PostgreSQL
# database, time ferry's export end to end (POST → status completed) in each
# profile (lite, native, analytics over all dates) against
# `pg_dump -Fc -n tenant_bench` of the same data, and record wall time, rows/s,
# MB/s, output bytes and peak RSS. Writes bench/results/export-vs-pg_dump-<date>.md
# and prints it.
#
# Usage: bench/export-vs-pg_dump.sh [SCALE ...]      (measured: 205 ≈ 100 MB,
#        2050 ≈ 1 GB, which takes several minutes to generate)
# Env:   PGHOST/PGPORT/PGUSER (default 127.0.0.1/5432/postgres, trust auth),
#        FERRY_BIN (default $CARGO_TARGET_DIR/release/ferry, ~/.cache/ferry/target).
#        FERRY_DEFLATE_LEVEL (passed to ferry serve), BENCH_RESULTS (output file),
#        BENCH_ROUNDS (default 3: pg_dump and the lite export alternate this many
#        times, medians reported), FERRY_BASE (another ferry binary whose lite
#        export is measured in the same rounds, to compare two versions).
set -euo pipefail
cd "$(dirname "$0")/.."

scales=("$@")
[ ${#scales[@]} -gt 0 ] || scales=(205)
rounds=${BENCH_ROUNDS:-3}
FERRY_BASE=${FERRY_BASE:-}

# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v pg_dump >/dev/null || { echo "pg_dump not found" >&2; exit 1; }

# Submit an export over HTTP and wait until it is final, polling twice a
# second; prints the final status JSON. (A tight poll, curl and jq every
# 50 ms, took a fifth of this 2-core machine's CPU away from the export it
# was timing.) The export's wall time is the server's own record of it,
# completedAt − requestedAt, not the polling's.
# The timed runs of one scale (they read $scale, $data, $db and $rows).
time_pg_dump() { # sets w and pg_rss_kb
  local dump="$scratch/out-$scale.dump" t0 t1
  psql -qX -d postgres -c CHECKPOINT >/dev/null
  t0=$(now)
  if [ -n "$GNU_TIME" ]; then
    $GNU_TIME -v -o "$data/pg_dump.time" pg_dump -Fc -n tenant_bench -f "$dump" "$db"
    t1=$(now)
    pg_rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$data/pg_dump.time")
  else
    pg_dump -Fc -n tenant_bench -f "$dump" "$db" & p=$!
    pg_rss_kb=0
    while kill -0 "$p" 2>/dev/null; do
      v=$(awk '/VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
      [ "${v:-0}" -gt "$pg_rss_kb" ] && pg_rss_kb=$v
      sleep 0.02
    done
    wait "$p"; t1=$(now)
  fi
  w=$(calc "$t1 - $t0" %.3f)
  outb[pg_dump]=$(stat -c %s "$dump")
  rm -f "$dump"
}
time_ferry() { # $1 = profile; sets w, and rss/outb/nrows/steps of the profile
  local profile=$1 port body t0 t1 hwm status_json st id
  port=$(free_port)
  start_server "$data" "$port"
  body="{\"profile\": \"$profile\", \"includeAssets\": false}"
  [ "$profile" = analytics ] &&
    body='{"profile": "analytics", "includeAssets": false, "dateRange": {"from": "1970-01-01", "to": "2099-12-31"}}'
  log "scale $scale: $FERRY export, profile $profile (server pid $server_pid, port $port)"
  psql -qX -d postgres -c CHECKPOINT >/dev/null
  export_and_wait "$port" "$body" >"$data/$profile.out" 2>"$data/$profile.err"
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")
  stop_server
  status_json=$(cat "$data/$profile.out")
  st=$(jq -r .status <<<"$status_json")
  [ "$st" = completed ] || { echo "export $profile ended $st" >&2; cat "$data/$profile.out" "$data/$profile.err" >&2; exit 1; }
  id=$(jq -r .id <<<"$status_json")
  w=$(span_s "$(jq -r .requestedAt <<<"$status_json")" "$(jq -r .completedAt <<<"$status_json")")
  rss[$profile]=$hwm
  outb[$profile]=$(jq -r .sizeBytes <<<"$status_json")
  nrows[$profile]=$(jq -r .rowsDone <<<"$status_json")
  # native reports rowsDone 0 (pg_dump does the rows); count the table rows instead
  if [ "${nrows[$profile]}" = 0 ]; then nrows[$profile]=$rows; native_note=" (native reports rowsDone 0: its rows/s uses the table row count)"; fi
  # where the time went: the engine's per-step elapsed_ms for this workflow
  steps[$profile]=$(step_times "$data/serve.log" "$id")
}
pg_dump_version=$(pg_dump --version)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sections=""
verdicts=""

for scale in "${scales[@]}"; do
  db="ferry_bench_$$_$scale"
  data="$scratch/data-$scale"
  mkdir -p "$data"
  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" FERRY_TENANT_ISOLATION=schema FERRY_DATA_DIR="$data"

  log "scale $scale: generating sample tenant in $db"
  t0=$(now)
  "$FERRY" sample --tenant bench --scale "$scale" >"$data/sample.json" 2>"$data/sample.log"
  t1=$(now)
  sample_s=$(calc "$t1 - $t0")
  psql -qX -d "$db" -c "VACUUM ANALYZE" >/dev/null
  table_bytes=$(psql -qXAt -d "$db" -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='tenant_bench' AND c.relkind='r'")
  heap_bytes=$(psql -qXAt -d "$db" -c "SELECT sum(pg_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace WHERE n.nspname='tenant_bench' AND c.relkind='r'")
  ntables=$(psql -qXAt -d "$db" -c "SELECT count(*) FROM pg_tables WHERE schemaname='tenant_bench'")
  rows=$(psql -qXAt -d "$db" -c "SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint) FROM pg_tables WHERE schemaname='tenant_bench'")
  table_mb=$(calc "$table_bytes / 1000000")
  log "scale $scale: $rows rows, $table_mb MB (pg_total_relation_size) in ${sample_s}s"

  rows_md=""
  native_note=""
  declare -A wall=() rss=() outb=() nrows=() steps=()

  # ---- pg_dump and ferry lite in alternating rounds (medians reported),
  # then native and analytics once; each timed run after a checkpoint ----
  pg_runs=() lite_runs=() base_runs=()
  for round in $(seq "$rounds"); do
    log "scale $scale: round $round of $rounds: pg_dump -Fc -n tenant_bench"
    time_pg_dump; pg_runs+=("$w")
    time_ferry lite; lite_runs+=("$w")
    if [ -n "$FERRY_BASE" ]; then
      main=$FERRY; FERRY=$FERRY_BASE
      time_ferry lite; base_runs+=("$w"); base_rss=${rss[lite]}
      FERRY=$main
    fi
  done
  wall[pg_dump]=$(median "${pg_runs[@]}")
  rss[pg_dump]=$pg_rss_kb
  nrows[pg_dump]=$rows
  wall[lite]=$(median "${lite_runs[@]}")
  for profile in native analytics; do
    time_ferry "$profile"; wall[$profile]=$w
  done
  rounds_md="- Rounds (wall s, in run order): pg_dump ${pg_runs[*]}; ferry lite ${lite_runs[*]}"
  if [ -n "$FERRY_BASE" ]; then
    wall[base]=$(median "${base_runs[@]}")
    rss[base]=$base_rss outb[base]=${outb[lite]} nrows[base]=${nrows[lite]}
    rounds_md+="; ferry lite, base binary ($FERRY_BASE) ${base_runs[*]}"
  fi

  pgw=${wall[pg_dump]}
  tools=(pg_dump lite native analytics)
  [ -n "$FERRY_BASE" ] && tools+=(base)
  for tool in "${tools[@]}"; do
    label=$tool; [ "$tool" = pg_dump ] || label="ferry $tool"
    [ "$tool" = pg_dump ] && label='`pg_dump -Fc -n tenant_bench`'
    [ "$tool" = base ] && label="ferry lite, base binary"
    w=${wall[$tool]}
    rows_md+="| $label | $w | $(calc "${nrows[$tool]} / $w" %.0f) | $(calc "$table_mb / $w" %.1f) | ${outb[$tool]} | $(calc "${rss[$tool]} / 1024" %.1f) | $(calc "$w / $pgw" %.2f)× |"$'\n'
  done
  lite_ratio=$(calc "${wall[lite]} / $pgw" %.2f)
  max_rss=$(printf '%s\n' "${rss[lite]}" "${rss[native]}" "${rss[analytics]}" | sort -n | tail -1)
  max_rss_mib=$(calc "$max_rss / 1024" %.1f)
  if awk "BEGIN { exit !(${wall[lite]} <= $pgw) }"; then lite_ok="**holds**"; else lite_ok="**does not hold**"; fi
  if [ "$max_rss" -le $((100 * 1024)) ]; then rss_ok="**holds**"; else rss_ok="**does not hold**"; fi

  sections+="### Scale $scale — $table_mb MB of table data, $rows rows

- Tables: $ntables in \`tenant_bench\`; table bytes (\`pg_total_relation_size\`, heap + TOAST + indexes): $table_bytes; heap only: $heap_bytes
- \`ferry sample --scale $scale\`: ${sample_s} s
- MB/s below is table data MB ($table_mb, decimal MB) divided by wall time; rows/s is rows exported / wall$native_note.

| tool / profile | wall s | rows/s | MB/s | output bytes | peak RSS MiB | × pg_dump wall |
|---|---:|---:|---:|---:|---:|---:|
$rows_md
$rounds_md. pg_dump and lite are medians of these rounds; native and analytics ran once.

Ferry's peak RSS is the server's \`VmHWM\` (fresh \`ferry serve\` per profile, read after the export completed); the native profile's own \`pg_dump\` child is a separate process and not included. pg_dump's is \`/usr/bin/time -v\` max RSS (client only; the PostgreSQL backend is not counted for either tool).

Engine steps (elapsed per step, from the server's JSON log):

- lite: ${steps[lite]:-n/a}
- native: ${steps[native]:-n/a}
- analytics: ${steps[analytics]:-n/a}

Targets at this size: lite ≤ 1.0× pg_dump wall — ${lite_ratio}×, $lite_ok; peak RSS ≤ 100 MiB — max ${max_rss_mib} MiB, $rss_ok.

"
  verdicts+="- scale $scale ($table_mb MB): lite/pg_dump = ${lite_ratio}× → $lite_ok; max peak RSS ${max_rss_mib} MiB → $rss_ok"$'\n'
  unset wall rss outb nrows steps

  psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  rm -rf "$data"
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
date=$(date -u +%Y-%m-%d)
out="${BENCH_RESULTS:-bench/results/export-vs-pg_dump-$date.md}"
mkdir -p bench/results
{
  echo "# ferry export vs pg_dump — $date"
  echo
  echo "Command: \`bench/export-vs-pg_dump.sh ${scales[*]}\` (started $started)"
  echo
  echo "## Machine"
  echo
  echo "- CPU: $machine_model, nproc $machine_cpus"
  echo "- Memory: $machine_mem"
  echo "- Load average (1/5/15 min): before $load_before, after $load_after"
  echo "- PostgreSQL $pg_version at $PGHOST:$PGPORT; $pg_dump_version; $ferry_version"
  echo "- Each export: \`POST /api/v1/tenant/export\` (\`{\"profile\": P, \"includeAssets\": false}\`) to a fresh \`ferry serve\` (FERRY_TENANT_ISOLATION=schema, FERRY_EXPORTS_PER_DAY=1000, deflate level \`${FERRY_DEFLATE_LEVEL:-default}\`), timed by the server's own record (\`completedAt\` − \`requestedAt\` of the status; the status polled every 500 ms), pg_dump as a process; analytics with \`dateRange\` 1970-01-01..2099-12-31. Every timed run starts after a \`CHECKPOINT\`; pg_dump and lite alternate for $rounds rounds (medians reported), native and analytics run once."
  echo
  echo "## Targets (issue 3)"
  echo
  echo "lite export ≤ 1.0× pg_dump wall time; peak RSS ≤ 100 MiB."
  echo
  printf '%s' "$verdicts"
  echo
  echo "## Results"
  echo
  printf '%s' "$sections"
} >"$out"
cat "$out"
echo "wrote $out" >&2
