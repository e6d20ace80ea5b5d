#!/bin/bash
# A fresh backup joining a primary with N orders of history (default 20,000,000): time from the
# backup's start to its being in step (as its /status says), and the journal bytes on each side.
# MODE snapshot (default): the primary has taken its first snapshot (after its recovery) and compacted
# its journal to it (one snapshot retained) before the backup starts, which installs it and gets the
# blocks after it (a primary that still holds the blocks sends them: the history stays in both
# journals); MODE blocks: snapshots off on both nodes, the backup gets the whole chain from genesis.
# The primary's log line says the bytes the catch-up sent, and before LZ4.
# usage: bash bench/rejoin.sh [orders] [timeout-seconds] [snapshot|blocks]   (builds nothing: run `dotnet build -c Release` first)
set -u
ORDERS=${1:-20000000}
LIMIT=${2:-300}
MODE=${3:-snapshot}
if [ "$MODE" = blocks ]; then
  export ENGINE_SNAPSHOTEVERYBLOCKS=0 ENGINE_SNAPSHOTEVERYSECONDS=0
else
  export ENGINE_SNAPSHOTRETAIN=1
fi
E=$(dirname "$0")/../tools/Engine.Cli/bin/Release/net10.0/engine.dll
R=$(mktemp -d /tmp/engine-rejoin-XXXXXX)
trap 'kill -9 ${PA:-} ${PB:-} 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$R"/*.log /tmp/ ; rm -rf "$R"' EXIT
dotnet "$E" log generate "$R/a/journal" --count "$ORDERS" 2>&1 | tail -1
dotnet "$E" serve --role primary --data "$R/a" --listen 127.0.0.1:7620 --replication-listen 127.0.0.1:7621 --admin 127.0.0.1:7622 --allow-solo > "$R/a.log" 2>&1 &
PA=$!
until curl -sf "http://127.0.0.1:7622/status?state=false" | grep -q '"role":"primary"'; do sleep 0.2; done
if [ "$MODE" != blocks ]; then
  until curl -sf "http://127.0.0.1:7622/status?state=false" | grep -q '"journal_base_block":[1-9]'; do sleep 0.2; done
fi
START=$(date +%s.%N)
${WRAP:-} dotnet "$E" serve --role backup --data "$R/b" --listen 127.0.0.1:7623 --peer 127.0.0.1:7621 --replication-listen 127.0.0.1:7624 --admin 127.0.0.1:7625 > "$R/b.log" 2>&1 &
PB=$!
# The backup's own word: in step once it has applied (or installed) everything the catch-up carried.
while ! curl -sf -m 2 "http://127.0.0.1:7625/status?state=false" | grep -q '"in_step":true'; do
  if (( $(echo "$(date +%s.%N) - $START > $LIMIT" | bc) )); then
    echo "NOT in step after $LIMIT s; the backup holds block $(curl -sf -m 2 "http://127.0.0.1:7625/status?state=false" | grep -o '"block":[0-9]*')"
    grep -h "caught up\|catching up\|silent\|did not authenticate" "$R/a.log" "$R/b.log" | tail -5
    exit 1
  fi
  sleep 0.2
done
echo "in step after $(echo "$(date +%s.%N) - $START" | bc) s"
du -sb "$R"/a/journal/log.* "$R"/b/journal/log.* "$R"/a/journal/snapshots "$R"/b/journal/snapshots 2>/dev/null
grep -h "installs the snapshot\|caught up" "$R/a.log" | tail -2
