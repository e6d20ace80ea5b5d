#!/usr/bin/env bash
# The cost of TLS on the client port: a plaintext node and a TLS node (self-signed ECDSA P-256
# certificate) side by side, `engine load` against each in turn (A B A B) at 1k/s, 10k/s and peak,
# so both see the same machine. Prints one JSON line per pair of runs.
#   bash bench/tls.sh [ROUNDS]       (after `dotnet build Engine.sln -c Release`)
set -euo pipefail
rounds=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
engine=(dotnet "$root/tools/Engine.Cli/bin/Release/net10.0/engine.dll")
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
"${engine[@]}" serve --data plain --listen 127.0.0.1:7501 > plain.log 2>&1 & pids+=($!)
"${engine[@]}" serve --data tls --listen 127.0.0.1:7502 --tls-cert cert.pem --tls-key key.pem > tls.log 2>&1 & pids+=($!)
for _ in $(seq 1 150); do
  (echo > /dev/tcp/127.0.0.1/7501) 2>/dev/null && (echo > /dev/tcp/127.0.0.1/7502) 2>/dev/null && break
  sleep 0.2
done
plain=(--target 127.0.0.1:7501)
tls=(--target 127.0.0.1:7502 --tls --tls-ca cert.pem)
"${engine[@]}" load "${plain[@]}" --max --duration 5 --json > /dev/null   # warm-up
"${engine[@]}" load "${tls[@]}" --max --duration 5 --json > /dev/null
for round in $(seq 1 "$rounds"); do
  for mode in "--rate 1000 --duration 8" "--rate 10000 --duration 8" "--max --duration 5"; do
    # shellcheck disable=SC2086
    a=$("${engine[@]}" load "${plain[@]}" $mode --seed "$round" --json 2>/dev/null)
    # shellcheck disable=SC2086
    b=$("${engine[@]}" load "${tls[@]}" $mode --seed "$round" --json 2>/dev/null)
    echo "{\"round\":$round,\"mode\":\"$mode\",\"plain\":$a,\"tls\":$b}"
  done
done
