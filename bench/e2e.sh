#!/usr/bin/env bash
# End-to-end numbers: a real `engine serve` and `engine load` sharing this machine's cores.
# For each durability: a warm-up, closed loop (--max) three times, open loop at 100k/s and 10k/s,
# each checked against the journal (lost, duplicates). Prints one JSON line per run.
# Usage: bash bench/e2e.sh [seconds per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
dotnet build -c Release tools/Engine.Cli -v quiet -nologo > /dev/null
engine=(dotnet tools/Engine.Cli/bin/Release/net10.0/engine.dll)
port=7460
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT

for durability in memory disk; do
  rm -rf "$data/$durability"
  "${engine[@]}" serve --data "$data/$durability" --listen 127.0.0.1:$port --durability $durability > "$data/serve-$durability.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  run() { "${engine[@]}" load --target 127.0.0.1:$port --connections 4 --json --journal "$data/$durability/journal" "$@" 2>/dev/null |
          sed "s/^{/{\"durability\":\"$durability\",\"args\":\"$*\",/"; }
  run --max --duration 2 > /dev/null   # warm-up: JIT, FASTER's memory, the book
  for _ in 1 2 3; do run --max --duration "$seconds"; done
  run --rate 100000 --duration "$seconds"
  run --rate 10000 --duration "$seconds"
  kill -TERM $server; wait $server || true
  port=$((port + 1))
done
