#!/bin/bash
# Usage: scripts/prom_mean_query.sh BENCH_DIR [MODELWATCH_BINARY]
# The fourth side-by-side query (one feature's mean over 7 days at a 1-minute step), both servers
# on the stores `MODELWATCH_BENCH_DIR=BENCH_DIR cargo bench --bench prom_compare` left, timed alone: median of 15 warm requests each
# (one warm-up), ours with `to` 1 ms later every time (the answer cache never answers).
B=${1:?the MODELWATCH_BENCH_DIR a prom_compare run left}; M=${2:-target/release/modelwatch}
$M serve --data $B/modelwatch --listen 127.0.0.1:19601 > /dev/null 2>&1 & P1=$!
prometheus --config.file=$B/prometheus.yml --storage.tsdb.path=$B/prometheus --web.listen-address=127.0.0.1:19602 --storage.tsdb.retention.time=100y --storage.tsdb.max-block-duration=18h > /dev/null 2>&1 & P2=$!
for i in $(seq 1 150); do curl -sf -o /dev/null http://127.0.0.1:19601/healthz && curl -sf -o /dev/null http://127.0.0.1:19602/-/ready && break; sleep 0.2; done
START=1763596800000; END=$((START + 7*86400000))
ours="/api/v1/query?query=mean%28feature%7Bfeature%3D%22amount%22%7D%29&from=$START&step=1m&to="
theirs="/api/v1/query_range?query=sum%28increase%28model_feature_amount_sum%5B1m%5D%29%29%20%2F%20sum%28increase%28model_feature_amount_count%5B1m%5D%29%29&start=$((START/1000+60))&end=$((END/1000))&step=60"
med() { sort -n | awk '{a[NR]=$1} END {printf "%.1f ms (min %.1f, max %.1f, n %d)\n", a[int((NR+1)/2)]*1000, a[1]*1000, a[NR]*1000, NR}'; }
uptime
for r in $(seq 0 15); do t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:19601${ours}$((END + r + 1))"); [ $r -gt 0 ] && echo $t; done | med | sed 's/^/modelwatch /'
for r in $(seq 0 15); do t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:19602${theirs}"); [ $r -gt 0 ] && echo $t; done | med | sed 's/^/prometheus /'
uptime
kill $P1 $P2; wait 2>/dev/null
