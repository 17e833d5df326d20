#!/usr/bin/env bash
# Measures the figures the issues quote, on this machine:
#   - one decision step, 50 PoPs x 20 links x 20,000 prefixes, one core
#   - announcing 10,000 prefixes to one GoBGP peer until all are in its RIB
#   - loss -> prefixes gone from the ISP's RIB: the demo (30 % loss, black
#     hole, shortened thresholds) and the integration test (5 % loss and
#     black hole, default loss thresholds), on real GoBGP peers and probes
# Usage: bench/run.sh [count]   (count: repetitions of each Go benchmark, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== decision step (decisions, one core)"
go test -run '^$' -bench '^BenchmarkStep' -benchtime 20x -count "$count" -cpu 1 ./decisions | grep -E '^Benchmark' | tee "$out/decisions.txt"

echo "== 10,000 prefixes announced to one GoBGP peer until all are in its RIB"
go test -run '^$' -bench '^BenchmarkAnnounce10k$' -benchtime 3x -count "$count" ./actuators/bgp | grep -E '^Benchmark' | tee "$out/bgp.txt"

echo "== sdnoc demo (30 % loss, black hole; demo thresholds)"
for i in $(seq 1 "$count"); do
  go run ./cmd/sdnoc demo --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print("passed=%s withdraw_ms=%.0f blackhole_withdraw_ms=%.0f restore_ms=%.0f total_s=%.1f" % (r["passed"], r["withdraw_latency_ms"], r["blackhole_withdraw_latency_ms"], r["restore_latency_ms"], r["duration_ms"]/1000))'
done

echo "== integration test (5 % loss and black hole; default loss thresholds)"
for i in $(seq 1 "$count"); do
  go test -count=1 -run '^TestLoopOnRealPeers$' -v ./controller | grep -o 'black hole -> .*' || true
done

echo "== flow collector vs goflow2 v2.2.6 CLI (records per CPU-second, UDP drops)"
bench/flow.sh 5

echo "== edge proxy vs nginx and HAProxy (wrk, 100 connections; prints PASS/FAIL against the goal)"
bench/proxy.sh || true
