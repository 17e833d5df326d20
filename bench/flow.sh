#!/usr/bin/env bash
# Decoding cost of sdnoc's flow collector against goflow2 v2.2.6's CLI, on
# the same datagrams. For each format (sFlow, NetFlow v5, NetFlow v9,
# IPFIX), bench/flowreplay sends datagrams built from the captures in
# collectors/flow/testdata/captures at full rate over loopback, from 4
# exporters with one socket each (templates first), to:
#   sdnoc    bench/flowsink: flow.Collector, records attributed to links
#            and edge prefixes (2 SO_REUSEPORT sockets on 2 CPUs)
#   goflow2  goflow2 -format=bin -transport=file -transport.file=/dev/null
#            (its cheapest output), 2 sockets, blocking=true (see below)
# and prints, per collector: records decoded, CPU seconds of the collector
# process (utime+stime from /proc/PID/stat: the sender shares the
# machine), records per CPU-second, and datagrams the kernel dropped on
# the collector's sockets (the drops column of /proc/net/udp); then the
# ratio sdnoc/goflow2 of records per CPU-second.
#
# goflow2 runs with blocking=true: by default its reader queues up to
# 1,000,000 datagrams of 9,000-byte buffers (utils/udp.go) between the
# sockets and the decoders, 9 GB at full rate; blocking, it leaves the
# backlog in the kernel like sdnoc, so both drop in the same place.
#
# Usage: bench/flow.sh [seconds per run, default 5] [formats...]
#   formats: sflow netflow5 netflow9 ipfix (default: all four)
# Builds into bin/bench/ (git-ignored), installing goflow2 there once.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
shift || true
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(sflow netflow5 netflow9 ipfix)
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: $0 [seconds] [sflow|netflow5|netflow9|ipfix ...]" >&2
  exit 2
fi

bin=bin/bench
goflow2=$bin/goflow2-v2.2.6/goflow2
out=$(mktemp -d)
collector='' replayer=''
# Ends only the processes this script started (the collector and the
# replayer of the current run), then removes its files.
cleanup() {
  for p in $collector $replayer; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$bin"
go build -o "$bin/flowsink" ./bench/flowsink
go build -o "$bin/flowreplay" ./bench/flowreplay
if [ ! -x "$goflow2" ]; then
  echo "installing goflow2 v2.2.6 into $bin/goflow2-v2.2.6" >&2
  GOBIN="$PWD/$bin/goflow2-v2.2.6" go install github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6
fi

# ticks PID: CPU clock ticks (utime+stime) of every thread of PID.
ticks() {
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) } # comm may hold spaces; fields restart at state (field 3)
  awk '{print $12 + $13}' <<<"$s"
}

# udp PORT: "rx_queue drops" summed over the UDP sockets bound to PORT
# in /proc/net/udp (rx_queue: bytes waiting, hexadecimal; drops: the
# datagrams the kernel dropped because the socket's buffer was full).
udp() {
  local queue=0 drops=0 q d
  while read -r q d; do
    queue=$((queue + 16#$q))
    drops=$((drops + d))
  done < <(awk -v port="$(printf ':%04X' "$1")" \
    'NR > 1 && substr($2, length($2) - 4) == port { split($5, q, ":"); print q[2], $13 }' /proc/net/udp)
  echo "$queue $drops"
}

# bound PORT: true once a socket is bound to PORT.
bound() { [ -n "$(awk -v port="$(printf ':%04X' "$1")" 'NR > 1 && substr($2, length($2) - 4) == port' /proc/net/udp)" ]; }

# free_port: a UDP and TCP port nothing on loopback uses now.
free_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", s.getsockname()[1])); print(s.getsockname()[1])'
}

# goflow2_records FORMAT METRICS_FILE: records goflow2 decoded, from its
# Prometheus counters (metrics/producer.go, metrics/decoder.go): one per
# flow sample for sFlow, the v5 header's count (which goflow2 adds to
# flow_process_nf_flowset_total), data records of data sets for v9 and
# IPFIX.
goflow2_records() {
  local re
  case $1 in
    sflow) re='^goflow2_flow_process_sf_samples_total[{].*type="(Expanded)?FlowSample"' ;;
    netflow5) re='^goflow2_flow_process_nf_flowset_total[{].*type="DataFlowSet",version="5"' ;;
    netflow9) re='^goflow2_flow_process_nf_flowset_records_total[{].*type="DataFlowSet",version="9"' ;;
    ipfix) re='^goflow2_flow_process_nf_flowset_records_total[{].*type="DataFlowSet",version="10"' ;;
  esac
  awk -v re="$re" '$0 ~ re { n += $NF } END { printf "%d\n", n }' "$2"
}

# metric_sum NAME METRICS_FILE: sum of every series of NAME.
metric_sum() { awk -v re="^$1[{ ]" '$0 ~ re { n += $NF } END { printf "%d\n", n }' "$2"; }

# run FORMAT COLLECTOR: one measurement; sets records, ticks, drops,
# sent and received (datagrams).
run() {
  local format=$1 who=$2 port mport t0 t1 prev now i queue scheme=netflow
  port=$(free_port)
  case $who in
    sdnoc)
      "$bin/flowsink" -listen "127.0.0.1:$port" -sockets 2 >"$out/sink.json" 2>"$out/collector.err" &
      ;;
    goflow2)
      mport=$(free_port)
      [ "$format" = sflow ] && scheme=sflow
      "$goflow2" -listen="$scheme://127.0.0.1:$port?count=2&blocking=true" -addr="127.0.0.1:$mport" \
        -format=bin -transport=file -transport.file=/dev/null -loglevel=error >/dev/null 2>"$out/collector.err" &
      ;;
  esac
  collector=$!
  for i in $(seq 50); do
    bound "$port" && break
    kill -0 "$collector" 2>/dev/null || break
    sleep 0.1
  done
  if ! bound "$port"; then
    echo "$who did not bind 127.0.0.1:$port:" >&2
    cat "$out/collector.err" >&2
    return 1
  fi
  t0=$(ticks "$collector")
  "$bin/flowreplay" -format "$format" -target "127.0.0.1:$port" -duration "${secs}s" >"$out/replay.json" &
  replayer=$!
  wait "$replayer"
  replayer=''
  sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["datagrams"])' "$out/replay.json")
  # Drained: nothing left in the sockets and no CPU used for 0.3 s.
  prev=$(ticks "$collector")
  for i in $(seq 100); do
    sleep 0.3
    now=$(ticks "$collector")
    read -r queue drops < <(udp "$port")
    [ "$queue" -eq 0 ] && [ $((now - prev)) -le 1 ] && break
    prev=$now
  done
  t1=$(ticks "$collector")
  ticks=$((t1 - t0))
  read -r queue drops < <(udp "$port")
  case $who in
    sdnoc)
      kill -TERM "$collector"
      wait "$collector"
      read -r records received < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["records"], r["datagrams"])' "$out/sink.json")
      cp "$out/sink.json" "$out/sink-$format.json"
      ;;
    goflow2)
      curl -sf "http://127.0.0.1:$mport/metrics" >"$out/metrics"
      kill -TERM "$collector"
      wait "$collector" || true # exits 0 or 1 on SIGTERM depending on its listeners
      records=$(goflow2_records "$format" "$out/metrics")
      received=$(metric_sum goflow2_flow_traffic_packets_total "$out/metrics")
      local dropped errors
      dropped=$(metric_sum goflow2_flow_dropped_packets_total "$out/metrics")
      errors=$(metric_sum goflow2_flow_decoder_error_total "$out/metrics")
      [ "$dropped" -eq 0 ] || echo "goflow2 $format: $dropped datagrams dropped in user space" >&2
      [ "$errors" -eq 0 ] || echo "goflow2 $format: $errors datagrams failed to decode" >&2
      ;;
  esac
  collector=''
}

hz=$(getconf CLK_TCK)
printf '%-9s %-8s %10s %10s %10s %8s %14s %10s\n' format collector sent_dgram recv_dgram records cpu_s records/cpu_s udp_drops
declare -A rate
for format in "${formats[@]}"; do
  for who in sdnoc goflow2; do
    run "$format" "$who"
    rate[$who]=0
    [ "$ticks" -eq 0 ] || rate[$who]=$((records * hz / ticks))
    printf '%-9s %-8s %10d %10d %10d %8s %14d %10d\n' "$format" "$who" "$sent" "$received" "$records" \
      "$(awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')" "${rate[$who]}" "$drops"
  done
  awk -v s="${rate[sdnoc]}" -v g="${rate[goflow2]}" -v f="$format" \
    'BEGIN { if (g > 0) printf "%-9s sdnoc/goflow2 = %.2fx records per CPU-second\n", f, s / g }'
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("          sdnoc aggregates: %d of %d records attributed; top of %s: %s" % (r["attributed"], r["records"], r["link"], ", ".join(p["prefix"] for p in r["top"][:3])))' "$out/sink-$format.json"
done
