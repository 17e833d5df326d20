#!/usr/bin/env bash
# The edge proxy against nginx and HAProxy, side by side in one run: wrk
# (2 threads, 100 connections, keep-alive) on loopback through each proxy
# to the same small origin, requests/s and p99 latency.
#
#   origin   ORIGIN=nginx (default): an nginx instance answering
#            `return 200` with a 64-byte body, the cheapest origin there
#            is, so the proxies are what is measured (keepalive_requests
#            high so no proxy sees closes); ORIGIN=go: bench/proxyorigin,
#            a net/http server with the same body, a costlier origin
#            sharing the cores as an application would
#   sdnoc    sdnoc edge serve, one site (Host: bench.local), access log off,
#            its event-loop engine (the default on Linux)
#   sdnoc-goroutines  the same with --engine goroutines (a goroutine a
#            connection), for comparison
#   nginx    proxy_pass with an upstream keepalive pool, access log off
#   haproxy  mode http, http-reuse always, no logging
# Every proxy gets the same two worker threads (GOMAXPROCS=2,
# worker_processes 2, nbthread 2) on this 2-core machine, shared with wrk
# and the origin; nothing is pinned, so each proxy competes for the
# cores the same way. Rounds alternate the three (ROUNDS
# rounds of DURATION each, after a warm-up); the table gives the median.
#
# Usage: bench/proxy.sh   ROUNDS=3 DURATION=10s CONNECTIONS=100 ORIGIN=nginx|go
#                         EDGE_PROCS=2 (sdnoc's GOMAXPROCS)
#                         BODY=0 (bytes: POST requests with a body that size)
# Installs nginx, haproxy and wrk with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-100}
origin=${ORIGIN:-nginx}
post_body=${BODY:-0}

missing=()
for pair in nginx:nginx haproxy:haproxy wrk:wrk; do
  cmd=${pair%%:*} pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench/proxy.sh: needs ${missing[*]}; run as root (it installs them with apt-get) or install them" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
origin_port=$(free_port) sdnoc_port=$(free_port) admin_port=$(free_port) nginx_port=$(free_port) haproxy_port=$(free_port)
gor_port=$(free_port) gor_admin_port=$(free_port)
body='hello from origin, a small response body of 64 bytes..........'

mkdir -p "$tmp/origin/logs" "$tmp/nginx/logs" "$tmp/sites" "$tmp/state" "$tmp/state-goroutines"
cat > "$tmp/origin/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/origin/nginx.pid;
error_log $tmp/origin/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server { listen 127.0.0.1:$origin_port; location / { return 200 "$body\n"; } }
}
EOF
cat > "$tmp/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
cat > "$tmp/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$haproxy_port
  default_backend be
backend be
  server o1 127.0.0.1:$origin_port
EOF
cat > "$tmp/sites/bench.yaml" <<EOF
hosts: [bench.local]
origins: [{address: "127.0.0.1:$origin_port"}]
pool: {origin_keepalive: 60s, max_idle: 256}
access_log: false
EOF

go build -o "$tmp/sdnoc" ./cmd/sdnoc
if [ "$origin" = go ]; then
  go build -o "$tmp/proxyorigin" ./bench/proxyorigin
  GOMAXPROCS=2 "$tmp/proxyorigin" "127.0.0.1:$origin_port" & pids+=($!)
else
  "$nginx_bin" -p "$tmp/origin" -c "$tmp/origin/nginx.conf" -g 'daemon off;' & pids+=($!)
fi
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
"$haproxy_bin" -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy.log" 2>&1 & pids+=($!)
GOMAXPROCS=${EDGE_PROCS:-2} "$tmp/sdnoc" edge serve --sites "$tmp/sites" --state "$tmp/state" --listen "127.0.0.1:$sdnoc_port" \
  --admin "127.0.0.1:$admin_port" --access-log=false --log-level warn & pids+=($!)
GOMAXPROCS=${EDGE_PROCS:-2} "$tmp/sdnoc" edge serve --sites "$tmp/sites" --state "$tmp/state-goroutines" --listen "127.0.0.1:$gor_port" \
  --admin "127.0.0.1:$gor_admin_port" --access-log=false --log-level warn --engine goroutines & pids+=($!)

names="sdnoc sdnoc-goroutines nginx haproxy"
declare -A port=([sdnoc]=$sdnoc_port [sdnoc-goroutines]=$gor_port [nginx]=$nginx_port [haproxy]=$haproxy_port)
for name in $names; do
  for _ in $(seq 50); do
    got=$(curl -s -H 'Host: bench.local' "http://127.0.0.1:${port[$name]}/" || true)
    [ "$got" = "$body" ] && break
    sleep 0.1
  done
  if [ "$got" != "$body" ]; then
    echo "bench/proxy.sh: $name does not proxy to the origin (got '$got')" >&2
    exit 1
  fi
done

# run NAME: one wrk run; prints "rps p99_ms errors".
wrk_args=()
if [ "$post_body" -gt 0 ]; then
  printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' "$post_body" >"$tmp/post.lua"
  wrk_args=(-s "$tmp/post.lua")
fi
run() {
  local out rps p99 non2xx sock
  out=$(wrk -t2 -c"$conns" -d"$1" --latency "${wrk_args[@]}" -H 'Host: bench.local' "http://127.0.0.1:${port[$2]}/")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")
  echo "$rps $p99 $(( ${non2xx:-0} + ${sock:-0} ))"
}

for name in $names; do run 2s "$name" >/dev/null; done
for r in $(seq "$rounds"); do
  for name in $names; do
    run "$duration" "$name" >>"$tmp/$name.txt"
  done
done

python3 - "$tmp" "$rounds" "$duration" "$conns" "$origin" "$post_body" <<'EOF'
import statistics, sys
tmp, rounds, duration, conns, origin, body = sys.argv[1:]
res = {}
for name in ("sdnoc", "sdnoc-goroutines", "nginx", "haproxy"):
    rows = [list(map(float, l.split())) for l in open(f"{tmp}/{name}.txt")]
    rps = [r[0] for r in rows]
    res[name] = dict(rps=statistics.median(rps), lo=min(rps), hi=max(rps),
                     p99=statistics.median(r[1] for r in rows), errors=int(sum(r[2] for r in rows)))
requests = f"POSTs of {body} bytes" if int(body) > 0 else "GETs"
print(f"wrk -t2 -c{conns}, {requests}, {rounds} rounds of {duration}, {origin} origin, keep-alive to the origin, access logs off")
print(f"| proxy | requests/s (median) | min-max | p99 ms (median) | errors |")
print(f"| --- | --- | --- | --- | --- |")
for name, r in res.items():
    print(f"| {name} | {r['rps']:,.0f} | {r['lo']:,.0f}-{r['hi']:,.0f} | {r['p99']:.2f} | {r['errors']} |")
s, n = res["sdnoc"], res["nginx"]
ok = s["rps"] >= n["rps"] and s["p99"] <= n["p99"] and s["errors"] == 0
print(f"sdnoc/nginx: {s['rps']/n['rps']:.2f}x requests/s, p99 {s['p99']:.2f} vs {n['p99']:.2f} ms: {'PASS' if ok else 'FAIL'} (goal: >= nginx's requests/s, p99 <= nginx's)")
sys.exit(0 if ok else 1)
EOF
