#!/usr/bin/env bash
# The pair against a single node, same run, same box (primary, backup and load share the cores),
# then the takeover time over several `engine demo` runs. One JSON line per measurement.
# Usage: bash bench/pair.sh [seconds per run, default 5] [demo runs, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
demos=${2:-5}
dotnet build -c Release tools/Engine.Cli -v quiet -nologo > /dev/null
engine=(dotnet tools/Engine.Cli/bin/Release/net10.0/engine.dll)
data=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
measure() { # label target journal
  "${engine[@]}" load --target "$2" --connections 4 --max --duration 2 > /dev/null 2>&1 || true   # warm-up
  for args in "--max" "--rate 100000"; do
    "${engine[@]}" load --target "$2" --connections 4 --json --journal "$3" $args --duration "$seconds" 2>/dev/null |
      sed "s/^{/{\"setup\":\"$1\",\"args\":\"$args\",/"
  done
}

"${engine[@]}" serve --data "$data/single" --listen 127.0.0.1:7470 > "$data/single.log" 2>&1 & pids+=($!)
wait_port 7470; measure single 127.0.0.1:7470 "$data/single/journal"; kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true

"${engine[@]}" serve --role primary --data "$data/a" --listen 127.0.0.1:7471 --replication-listen 127.0.0.1:7481 > "$data/a.log" 2>&1 & pids+=($!)
"${engine[@]}" serve --role backup --data "$data/b" --listen 127.0.0.1:7472 --replication-listen 127.0.0.1:7482 --peer 127.0.0.1:7481 > "$data/b.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do grep -q "mirroring live" "$data/a.log" && break; sleep 0.05; done
measure pair 127.0.0.1:7471 "$data/b/journal"

for _ in $(seq "$demos"); do
  "${engine[@]}" demo --seconds 6 --rate 10000 --json 2>/dev/null | sed 's/^{/{"setup":"demo",/'
done
