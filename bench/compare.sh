#!/usr/bin/env bash
# Measures keyvault against OpenSSH and at fleet size, side by side in one run, and prints
# every row of BENCHMARKS.md. Run as root on a Debian-like machine (it installs hyperfine,
# GNU time and openssh-server if missing, and starts sshd instances on 127.0.0.1 for the
# pod row). Everything talks only to servers this script starts on 127.0.0.1.
#
#   bash bench/compare.sh            # every row (about 5 minutes on 2 cores)
#   RUNS=5 bash bench/compare.sh     # fewer runs per command
#   ROWS="1 6" bash bench/compare.sh # only these rows
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUNS="${RUNS:-20}"
ROWS=" ${ROWS:-1 2 3 4 5 6 7 8} "
want() { [[ "$ROWS" == *" $1 "* ]]; }

need=()
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p -m 0755 /run/sshd

cargo build --release --locked -q -p keyvault-cli -p keyvault-tests --bins
KV="$ROOT/target/release/keyvault"
FAKE="$ROOT/target/release/fake-runpod"
FLEET="$ROOT/target/release/make-fleet"

WORK="$(mktemp -d)"
PIDS=()
PGSTOP=()
PGDIR=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ "${#PGSTOP[@]}" -gt 0 ] && "${PGSTOP[@]}" >/dev/null 2>&1 || true
  [ -n "${PGDIR:-}" ] && rm -rf "$PGDIR"
  [ -f "$WORK/server.pid" ] && kill "$(cat "$WORK/server.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A throwaway benchmark passphrase, not a secret: ssh-keygen can only take a new
# passphrase on its command line (-N), keyvault reads it from the environment.
export BENCH_PASS='plum-Vortex-carpet-71-tundra'
export KEYVAULT_NO_INPUT=1 RUNPOD_API_KEY=rpa_TESTKEY0123456789abcdef KEYVAULT_RUNPOD_TIMEOUT=10

# median seconds of the command named $2 in hyperfine's CSV $1
median() { awk -F, -v n="$2" 'NR > 1 && $1 == n { print $4 }' "$1"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { printf '%-58s %s\n' "$1" "$2"; }
free_port() {
  while :; do
    local p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# The fake RunPod API, restarted with a fresh account for every run (`--prepare`).
PORT="$(free_port)"
export RUNPOD_API_URL="http://127.0.0.1:$PORT"
cat > "$WORK/reset.sh" <<EOF
#!/usr/bin/env bash
# usage: reset.sh PRISTINE_HOME HOME KEYS_FILE [PODS_FILE]
set -e
[ -f "$WORK/server.pid" ] && kill "\$(cat "$WORK/server.pid")" 2>/dev/null && sleep 0.05 || true
rm -rf "\$2"; cp -a "\$1" "\$2"
for d in "$WORK"/pods/*/; do
  if [ -d "\$d" ] && [ -f "$WORK/fleet-pods-out/authorized_keys" ]; then cp "$WORK/fleet-pods-out/authorized_keys" "\$d/authorized_keys"; fi
done
args=(--port $PORT --keys-file "\$3" --stats-file "$WORK/stats")
[ -n "\${4:-}" ] && args+=(--pods-file "\$4")
rm -f "$WORK/stats"
"$FAKE" "\${args[@]}" > /dev/null 2>&1 &
echo \$! > "$WORK/server.pid"
for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && exit 0; sleep 0.02; done
echo "fake-runpod did not start" >&2; exit 1
EOF
chmod +x "$WORK/reset.sh"
calls() { sleep 0.1; cat "$WORK/stats" 2>/dev/null || echo "0 0"; }

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$("$KV" --version), $(ssh -V 2>&1), $(hyperfine --version)"
echo

if want 1; then
echo "== 1. keyvault new Ed25519 (16 KDF rounds) vs ssh-keygen -t ed25519 -a 16"
hyperfine -N --warmup 3 --runs "$RUNS" --export-csv "$WORK/ed.csv" \
  --prepare "rm -rf $WORK/ed" -n keyvault "$KV --home $WORK/ed new --purpose p --kdf-rounds 16 --passphrase-env BENCH_PASS" \
  --prepare "rm -f $WORK/k $WORK/k.pub" -n ssh-keygen "ssh-keygen -q -t ed25519 -a 16 -N $BENCH_PASS -C bench -f $WORK/k" >/dev/null
a="$(median "$WORK/ed.csv" keyvault)"; b="$(median "$WORK/ed.csv" ssh-keygen)"
row "keyvault new ed25519 / ssh-keygen (goal <= 0.6x)" "$(ms "$a") / $(ms "$b") = $(ratio "$a" "$b")x"
fi

if want 2; then
echo "== 2. keyvault new RSA-4096 vs ssh-keygen -t rsa -b 4096 (>= 20 runs each)"
R=$(( RUNS < 20 ? 20 : RUNS ))
hyperfine -N --warmup 1 --runs "$R" --export-csv "$WORK/rsa.csv" \
  --prepare "rm -rf $WORK/rsa" -n keyvault "$KV --home $WORK/rsa new --purpose p --algorithm rsa-4096 --passphrase-env BENCH_PASS" \
  --prepare "rm -f $WORK/r $WORK/r.pub" -n ssh-keygen "ssh-keygen -q -t rsa -b 4096 -N $BENCH_PASS -C bench -f $WORK/r" >/dev/null
a="$(median "$WORK/rsa.csv" keyvault)"; b="$(median "$WORK/rsa.csv" ssh-keygen)"
row "keyvault new rsa-4096 / ssh-keygen (goal <= 0.5x)" "$(ms "$a") / $(ms "$b") = $(ratio "$a" "$b")x"
fi

if want 3; then
echo "== 3. list --json and status --offline at 1,000 and 10,000 keys"
for n in 1000 10000; do
  "$FLEET" --home "$WORK/fleet$n" --out "$WORK/fleet$n-out" --keys "$n" --purposes 50 --expired $((n / 10)) --runpod 0 --store sqlite >/dev/null
  # Write the new vault out first, so the kernel flushing it does not land in the timings.
  sync
  hyperfine -N -i --warmup 5 --runs "$RUNS" --export-csv "$WORK/list$n.csv" \
    -n list "$KV --home $WORK/fleet$n --json list" \
    -n status "$KV --home $WORK/fleet$n --json status --offline" >/dev/null
  for cmd in list status; do
    [ "$cmd" = list ] && args=(--json list) || args=(--json status --offline)
    # (status exits 3 here: a tenth of the keys expired)
    kb="$( { /usr/bin/time -f %M "$KV" --home "$WORK/fleet$n" "${args[@]}" 2>&1 >/dev/null || true; } | tail -1)"
    t="$(median "$WORK/list$n.csv" "$cmd")"
    eval "t_${cmd}_$n=$t"
    row "$cmd at $n keys (goal at 10,000: <= 50 ms, <= 50 MB)" "$(ms "$t"), peak $((kb / 1024)) MB"
  done
done
row "growth 1,000 -> 10,000 keys (10x keys; linear <= 10x)" \
  "list $(ratio "$t_list_10000" "$t_list_1000")x, status $(ratio "$t_status_10000" "$t_status_1000")x"
fi

if want 4; then
echo "== 4. rotate --all with 50 purposes against the RunPod test server"
"$FLEET" --home "$WORK/rot50" --out "$WORK/rot50-out" --keys 50 --purposes 50 --runpod 50 --store sqlite >/dev/null
"$WORK/reset.sh" "$WORK/rot50" "$WORK/rot" "$WORK/rot50-out/account-keys.txt"
"$KV" --home "$WORK/rot" --json rotate --all --passphrase-env BENCH_PASS >/dev/null
read -r reads writes < <(calls)
row "rotate --all, 50 purposes: key list reads / writes (goal 1(+1) / 1)" "$reads / $writes"
hyperfine --runs 5 --export-csv "$WORK/rot.csv" \
  --prepare "$WORK/reset.sh $WORK/rot50 $WORK/rot $WORK/rot50-out/account-keys.txt" \
  -n rotate "$KV --home $WORK/rot --json rotate --all --passphrase-env BENCH_PASS" >/dev/null
t="$(median "$WORK/rot.csv" rotate)"
if [ -f "$WORK/ed.csv" ]; then
  one="$(median "$WORK/ed.csv" keyvault)"
  row "rotate --all, 50 purposes (vs 50 x keyvault new: $(ms "$(awk -v o="$one" 'BEGIN { print o * 50 }')"))" "$(ms "$t")"
else
  row "rotate --all, 50 purposes (row 1 gives 50 x keyvault new)" "$(ms "$t")"
fi
fi

if want 5; then
echo "== 5. sweep with 10,000 keys, 1,000 expired (400 keys at RunPod, 40 of them expired)"
"$FLEET" --home "$WORK/sw" --out "$WORK/sw-out" --keys 10000 --purposes 50 --expired 1000 --runpod 400 --store sqlite >/dev/null
"$WORK/reset.sh" "$WORK/sw" "$WORK/sweep" "$WORK/sw-out/account-keys.txt"
"$KV" --home "$WORK/sweep" --json sweep > "$WORK/sweep.json"
read -r reads writes < <(calls)
revoked="$(awk '/"revoked": \[/ { f = 1; next } f && /\]/ { f = 0 } f' "$WORK/sweep.json" | wc -l)"
row "sweep: keys revoked, key list reads / writes (goal 1(+1) / 1)" "$revoked, $reads / $writes"
hyperfine --runs 5 --export-csv "$WORK/sweep.csv" \
  --prepare "$WORK/reset.sh $WORK/sw $WORK/sweep $WORK/sw-out/account-keys.txt" \
  -n sweep "$KV --home $WORK/sweep --json sweep" >/dev/null
row "sweep, 10,000 keys / 1,000 expired (goal <= 1 s)" "$(ms "$(median "$WORK/sweep.csv" sweep)")"
fi

if want 6; then
echo "== 6. rotate --pods: 16 sshd pods vs 1"
mkdir -p "$WORK/pods"
ports=()
for i in $(seq 16); do
  d="$WORK/pods/$i"; mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  cat > "$d/sshd_config" <<EOF
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
SetEnv KEYVAULT_AUTHORIZED_KEYS=$d/authorized_keys
EOF
  # A free port can be taken before sshd binds it (other programs on the machine): start
  # again on another until this sshd listens.
  while :; do
    p="$(free_port)"
    /usr/sbin/sshd -D -p "$p" -o ListenAddress=127.0.0.1 -f "$d/sshd_config" -E "$d/log" &
    s=$!
    until grep -q 'Server listening' "$d/log" 2>/dev/null || ! kill -0 "$s" 2>/dev/null; do sleep 0.02; done
    kill -0 "$s" 2>/dev/null && break
    : > "$d/log"
  done
  ports+=("$p"); PIDS+=("$s")
done
all="$(IFS=,; echo "${ports[*]}")"
"$FLEET" --home "$WORK/pods16" --out "$WORK/fleet-pods-out" --keys 1 --runpod 1 --pod-ports "$all" --store sqlite >/dev/null
rot_pods() {
  echo "$KV --home $WORK/podsvault --json rotate p0 --pods --passphrase-env BENCH_PASS --old-passphrase-env BENCH_PASS"
}
logins() { cat "$WORK"/pods/*/log 2>/dev/null | grep -c 'Accepted publickey' || true; }
for n in 1 16; do
  pods="$WORK/fleet-pods-out/pods.json"; [ "$n" = 1 ] && pods="$WORK/fleet-pods-out/pods-1.json"
  "$WORK/reset.sh" "$WORK/pods16" "$WORK/podsvault" "$WORK/fleet-pods-out/account-keys.txt" "$pods"
  before="$(logins)"
  updated="$($(rot_pods) | grep -o '"outcome": *"removed"' | wc -l)"
  [ "$updated" = "$n" ] || { echo "rotate --pods updated $updated of $n pods" >&2; exit 1; }
  if [ "$n" = 16 ]; then
    after="$(logins)"
    per_pod="$(awk -v d="$((after - before))" -v n="$n" 'BEGIN { printf "%.2f", d / n }')"
    row "rotate --pods, sshd logins per pod (goal 2)" "$per_pod"
  fi
  hyperfine --runs 5 --export-csv "$WORK/pods$n.csv" \
    --prepare "$WORK/reset.sh $WORK/pods16 $WORK/podsvault $WORK/fleet-pods-out/account-keys.txt $pods" \
    -n "pods$n" "$(rot_pods)" >/dev/null
done
a="$(median "$WORK/pods16.csv" pods16)"; b="$(median "$WORK/pods1.csv" pods1)"
row "rotate --pods, 16 pods / 1 pod (goal <= plain ssh's ratio below)" "$(ms "$a") / $(ms "$b") = $(ratio "$a" "$b")x"
# The same machine with plain OpenSSH: two logins per pod (what keyvault makes: the old key
# adds the new one; the new key proves itself and removes the old one), pods eight at a time,
# 16 pods vs 1. The pods' sshd share this machine's cores with the clients, so this is the
# floor for the ratio here.
ssh-keygen -q -t ed25519 -N '' -C baseline -f "$WORK/base_key"
for d in "$WORK"/pods/*/; do cat "$WORK/base_key.pub" >> "$d/authorized_keys"; done
cat > "$WORK/logins.sh" <<LOGINS
#!/usr/bin/env bash
# usage: logins.sh PORT...: two logins to each, eight pods at a time
printf '%s\n' "\$@" | xargs -P 8 -I{} sh -c 'for i in 1 2; do ssh -F /dev/null -i $WORK/base_key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p {} root@127.0.0.1 true || exit 1; done'
LOGINS
chmod +x "$WORK/logins.sh"
hyperfine --runs 5 --export-csv "$WORK/ssh.csv" -n ssh16 "$WORK/logins.sh ${ports[*]}" -n ssh1 "$WORK/logins.sh ${ports[0]}" >/dev/null
c="$(median "$WORK/ssh.csv" ssh16)"; d="$(median "$WORK/ssh.csv" ssh1)"
row "plain ssh, same logins, 16 pods / 1 pod (this machine's floor)" "$(ms "$c") / $(ms "$d") = $(ratio "$c" "$d")x"
row "rotate --pods ratio / plain ssh ratio (goal <= 1.00)" "$(awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN { printf "%.2f", (a / b) / (c / d) }')"
fi

if want 7; then
echo "== 7. keyvault --version"
hyperfine -N --warmup 10 --runs 100 --export-csv "$WORK/version.csv" -n version "$KV --version" >/dev/null
row "keyvault --version (goal <= 5 ms)" "$(ms "$(median "$WORK/version.csv" version)")"
fi

if want 8; then
echo "== 8. a vault that only grows (SQLite): 1,000, 100,000 and 1,000,000 records, 1,000 live"
# History is most of a big vault: every record but 1,000 is revoked (a CI fleet's minted
# keys, swept at expiry). Mints go to purpose p1, whose policy allows --no-passphrase.
for n in 1000 100000 1000000; do
  h="$WORK/grow$n"
  "$FLEET" --home "$h" --out "$h-out" --keys "$n" --purposes 50 --revoked $((n - 1000)) --store sqlite >/dev/null
  printf '[purpose.p1]\npassphrase = "optional"\ndefault_ttl = "1h"\nmax_ttl = "1d"\n' >"$h/config.toml"
  chmod 600 "$h/config.toml"
  sync
  hyperfine -N -i --warmup 3 --runs "$RUNS" --export-csv "$WORK/grow$n.csv" \
    -n mint "$KV --home $h --json mint --purpose p1 --ttl 1h --no-passphrase" \
    -n status "$KV --home $h --json status --offline" \
    -n sweep "$KV --home $h --json sweep" >/dev/null
  for cmd in mint status sweep; do eval "g_${cmd}_$n=$(median "$WORK/grow$n.csv" "$cmd")"; done
  kb="$( { /usr/bin/time -f %M "$KV" --home "$h" --json list 2>&1 >/dev/null || true; } | tail -1)"
  row "at $n records: mint / status --offline / sweep" \
    "$(ms "$(eval echo \$g_mint_$n)") / $(ms "$(eval echo \$g_status_$n)") / $(ms "$(eval echo \$g_sweep_$n)"), list --json peak $((kb / 1024)) MB"
done
row "mint, 100,000 / 1,000 and 1,000,000 / 1,000 records (goal <= 1.25x)" \
  "$(ratio "$g_mint_100000" "$g_mint_1000")x, $(ratio "$g_mint_1000000" "$g_mint_1000")x"
row "status --offline and sweep, 1,000,000 / 1,000 (goal <= 1.5x)" \
  "$(ratio "$g_status_1000000" "$g_status_1000")x, $(ratio "$g_sweep_1000000" "$g_sweep_1000")x"
row "list --json at 1,000,000 records, peak memory (goal < 100 MB)" "$((kb / 1024)) MB"

# 64 mints at once on one vault, against the same 64 one after another.
mint1() { "$KV" --home "$WORK/grow1000" --json mint --purpose p1 --ttl 1h --no-passphrase >/dev/null; }
# The machine may be shared: the load before the runs says how idle it was.
row "load average before the 64 mints (1, 5, 15 min)" "$(cut -d' ' -f1-3 /proc/loadavg)"
t0="$(date +%s.%N)"
for _ in $(seq 64); do mint1; done
t1="$(date +%s.%N)"
pids=()
for _ in $(seq 64); do mint1 & pids+=("$!"); done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t2="$(date +%s.%N)"
cores="$(nproc)"
row "64 concurrent mints, one SQLite vault: failed / wall" "$failed / $(ms "$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')") (64 in a row: $(ms "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"))"
row "64 concurrent / (64 in a row / $cores cores) (goal <= 2x)" \
  "$(awk -v s0="$t0" -v s1="$t1" -v s2="$t2" -v c="$cores" 'BEGIN { printf "%.2f", (s2 - s1) / ((s1 - s0) / c) }')x"

# The same on PostgreSQL: 8 homes (machines) share one database; 64 mints, 8 from each
# home at once, against 64 in a row (round the homes). The cluster is started as the
# test harness starts it (tests/src/postgres.rs): initdb and pg_ctl as an unprivileged
# user (kvpg, made if missing when run as root), on a free port of 127.0.0.1, data and
# socket in $WORK, stopped and removed at the end; but with fsync on (the server's
# default), as a real one runs. The database starts empty.
PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ] || ! command -v psql >/dev/null 2>&1; then
  row "64 concurrent mints, PostgreSQL from 8 homes" "skipped: PostgreSQL 15 is not installed ($PGBIN/initdb, psql)"
else
  # Its own directory in /tmp, as the harness makes it: $WORK is closed to kvpg.
  pgdir="$(mktemp -d /tmp/kvpg-bench.XXXXXX)"
  PGDIR="$pgdir"
  as_pg=()
  if [ "$(id -u)" = 0 ]; then
    id kvpg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin kvpg
    chown kvpg: "$pgdir"
    as_pg=(runuser -u kvpg --)
  fi
  # A throwaway password of a throwaway cluster: in keyvault's environment (PGPASSWORD)
  # and in psql's standard input, never on a command line.
  export PGPASSWORD="bench-$RANDOM$RANDOM-pg"
  echo "superuser-unused" >"$pgdir/pw"
  [ "${#as_pg[@]}" -gt 0 ] && chown kvpg: "$pgdir/pw"
  "${as_pg[@]}" "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync --pwfile="$pgdir/pw" >/dev/null
  pgport="$(free_port)"
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t 60 start \
    -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
  PGSTOP=("${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate -w -t 10 stop)
  printf "CREATE ROLE kv LOGIN PASSWORD '%s';\nCREATE DATABASE mints OWNER kv;\n" "$PGPASSWORD" |
    psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$pgport" -U postgres -d postgres -f - >/dev/null
  for i in $(seq 0 7); do
    mkdir -m 0700 "$WORK/pgh$i"
    printf 'store = "postgres://kv@127.0.0.1:%s/mints?sslmode=disable"\n[purpose.p1]\npassphrase = "optional"\ndefault_ttl = "1h"\nmax_ttl = "1d"\n' \
      "$pgport" >"$WORK/pgh$i/config.toml"
    chmod 600 "$WORK/pgh$i/config.toml"
  done
  pgmint() { "$KV" --home "$WORK/pgh$1" --json mint --purpose p1 --ttl 1h --no-passphrase >/dev/null; }
  pgmint 0 # makes the schema
  row "load average before the PostgreSQL mints (1, 5, 15 min)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  t0="$(date +%s.%N)"
  for i in $(seq 0 63); do pgmint $((i % 8)); done
  t1="$(date +%s.%N)"
  pids=()
  for i in $(seq 0 63); do pgmint $((i % 8)) & pids+=("$!"); done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  t2="$(date +%s.%N)"
  row "64 concurrent mints, PostgreSQL from 8 homes: failed / wall" "$failed / $(ms "$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')") (64 in a row: $(ms "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"))"
  row "64 concurrent / (64 in a row / $cores cores) (goal <= 2x)" \
    "$(awk -v s0="$t0" -v s1="$t1" -v s2="$t2" -v c="$cores" 'BEGIN { printf "%.2f", (s2 - s1) / ((s1 - s0) / c) }')x"
  "${PGSTOP[@]}" >/dev/null 2>&1 || true
  PGSTOP=()
  unset PGPASSWORD
fi
fi
