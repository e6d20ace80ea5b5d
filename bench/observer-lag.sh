#!/bin/bash
# An observer following a live pair (engine observe --peer) while the load generator offers RATE
# orders/s for SECONDS, all on this machine's cores: the observer's lag behind the primary's seal
# (its own report when stopped: per commit, now minus the newest committed block's seal time, once
# caught up), whether it reached the primary's last block, and the load's latency beside it. Run once
# without the observer (OBSERVER=none) for the load's baseline in the same session.
# usage: bash bench/observer-lag.sh [rate] [seconds] [sqlite|none|POSTGRES-CONNSTRING]   (builds nothing: run `dotnet build -c Release` first)
set -u
RATE=${1:-10000}
SECONDS_=${2:-20}
DB=${3:-sqlite}
E=$(dirname "$0")/../tools/Engine.Cli/bin/Release/net10.0/engine.dll
R=$(mktemp -d /tmp/engine-observer-XXXXXX)
trap 'kill -9 ${PA:-} ${PB:-} ${PO:-} 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$R"/*.log /tmp/ ; rm -rf "$R"' EXIT
dotnet "$E" serve --role primary --data "$R/a" --listen 127.0.0.1:7640 --replication-listen 127.0.0.1:7641 --peer 127.0.0.1:7644 --admin 127.0.0.1:7642 --allow-solo > "$R/a.log" 2>&1 &
PA=$!
until curl -sf "http://127.0.0.1:7642/status?state=false" | grep -q '"role":"primary"'; do sleep 0.2; done
dotnet "$E" serve --role backup --data "$R/b" --listen 127.0.0.1:7643 --replication-listen 127.0.0.1:7644 --peer 127.0.0.1:7641 --admin 127.0.0.1:7645 --allow-solo > "$R/b.log" 2>&1 &
PB=$!
until curl -sf "http://127.0.0.1:7645/status?state=false" | grep -q '"in_step":true'; do sleep 0.2; done
case "$DB" in
  none) ;;
  sqlite) dotnet "$E" observe --peer 127.0.0.1:7641,127.0.0.1:7644 --sqlite "$R/observer.db" > "$R/observer.out" 2> "$R/observer.log" & PO=$! ;;
  *) dotnet "$E" observe --peer 127.0.0.1:7641,127.0.0.1:7644 --postgres "$DB" > "$R/observer.out" 2> "$R/observer.log" & PO=$! ;;
esac
dotnet "$E" load --target 127.0.0.1:7640 --rate "$RATE" --duration "$SECONDS_" | grep -E "throughput|latency|errors"
HEAD=$(curl -sf "http://127.0.0.1:7642/status?state=false" | grep -o '"block":[0-9]*' | head -1 | cut -d: -f2)
if [ "$DB" != none ]; then
  # Caught up when its database holds the primary's last block (the ledger is idle now): at most 30 s.
  for _ in $(seq 300); do grep -q "following" "$R/observer.log" && [ -n "${HEAD}" ] && break; sleep 0.1; done
  sleep 2
  kill -TERM $PO; wait $PO
  echo "primary's last block: $HEAD"
  cat "$R/observer.out"
fi
