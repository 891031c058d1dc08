#!/usr/bin/env bash
# Side-by-side benchmark of egress-proxy against Squid, HAProxy and nginx on loopback (issue 6).
#
#   benchmarks/peers/run.sh [--quick] [--rounds N] [--out FILE] [--append] [--no-build] [--keep]
#
# --quick     64 MiB /big, 2 s per measurement, 1 round, 1,000 idle tunnels: ~2 minutes, a smoke test
#             (no warm-up round: egress-proxy runs with a cold JIT, its figures mean nothing)
# (full)      1 GiB /big, 8-10 s per measurement, 5 rounds after a warm-up round, 9,000 idle tunnels
#             in 3 rounds: ~30 minutes on 2 cores
# --out FILE  where the markdown report goes (default benchmarks/peers/last-run.md); it is printed too
# --append    also append the report to benchmarks/RESULTS.md
# --check-only  W6 (correctness) alone, printed
# --only W1,W3  these workloads only (W6 always runs first)
# --peers ours,base  these peers only (and the direct row), e.g. for a quick before/after
# --compare JAR  also run egress-proxy from JAR (e.g. a build before a change) as the peer "base"
# (peer "netty-relay", W1 and W2: a bare TCP relay on egress-proxy's runtime - Netty epoll, the same
#             JVM flags - with none of its work: what the JVM and Netty cost beside HAProxy's relay;
#             NETTY_RELAY_SPLICE=true makes it relay with Netty's splice(2) instead of copying)
# OURS_JVM_ARGS=...  JVM flags for egress-proxy (a JFR recording, heap settings); default: the
#             Dockerfile's GC flags, "-XX:+UseG1GC -XX:MinHeapFreeRatio=5 -XX:MaxHeapFreeRatio=10"
# BASE_JVM_ARGS=...  JVM flags for the --compare peer (default: OURS_JVM_ARGS), e.g. the same jar
#             with -Degress.transport=nio against epoll
# OURS_JAVA=..., BASE_JAVA=...  the java that runs egress-proxy and the --compare peer (default:
#             $JAVA, else java on the PATH; the load generator always runs on $JAVA), e.g. the same
#             jar on two JDKs (the netty-relay peer runs on OURS_JAVA, as egress-proxy does)
# --keep      keep the work directory (configurations, logs, raw results) in /dev/shm
#
# Installs what it needs from Debian (squid, haproxy, nginx + libnginx-mod-stream, wrk, openssl,
# curl, jq), builds the jars unless --no-build, and runs everything on 127.0.0.1 ports
# PEERS_PORT_BASE..+499 (default 21000). Every peer is configured as the same egress filter: allow
# allowed.test and *.allowed.test, deny the rest; names map to 127.0.0.1 through each peer's own
# configuration. Only wrk (W4, SNI from the URL) needs /etc/hosts: an entry is added and the file
# restored on exit.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
QUICK=0 CHECK_ONLY=0 PEERS="" BASE_JAR="" ONLY=W1,W2,W3,W4,W5 ROUNDS="" OUT="$REPO/benchmarks/peers/last-run.md" APPEND=0 BUILD=1 KEEP=0
CMDLINE="benchmarks/peers/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --append) APPEND=1 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --check-only) CHECK_ONLY=1 ;;
    --only) ONLY=$2; shift ;;
    --peers) PEERS=$2; shift ;;
    --compare) BASE_JAR=$(realpath "$2"); shift ;;
    *) echo "unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1} WARMUP=0 BIG_MIB=64 BULK_S=2 SHORT_S=2 WRK_S=2 LOAD_WARM=0.5 IDLE=1000 IDLE_ROUNDS=1
else
  ROUNDS=${ROUNDS:-5} WARMUP=1 BIG_MIB=1024 BULK_S=8 SHORT_S=10 WRK_S=10 LOAD_WARM=2 IDLE=9000 IDLE_ROUNDS=3
fi
# W5 holds 9,000 idle tunnels, not 10,000: a proxy needs two sockets per tunnel, and this sandbox
# caps open files at 20,000 per process (PEERS_IDLE overrides where the limit allows more).
IDLE=${PEERS_IDLE:-$IDLE}
[ "$IDLE_ROUNDS" -gt "$ROUNDS" ] && IDLE_ROUNDS=$ROUNDS

# the Dockerfile's collector flags (benchmarks/RESULTS.md: W5 with and without them)
OURS_DEFAULT_JVM_ARGS="-XX:+UseG1GC -XX:MinHeapFreeRatio=5 -XX:MaxHeapFreeRatio=10"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ---- tools ------------------------------------------------------------------------------------
need=()
for pair in squid:squid haproxy:haproxy nginx:nginx wrk:wrk openssl:openssl curl:curl jq:jq; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
JAVA=${JAVA:-java}
OURS_JAVA=${OURS_JAVA:-$JAVA}
BASE_JAVA=${BASE_JAVA:-$OURS_JAVA}
if [ "$BUILD" = 1 ] || [ ! -f "$REPO/benchmarks/target/benchmarks.jar" ]; then
  log "building the jars"
  (cd "$REPO" && mvn -B -q package -DskipTests)
fi
PROXY_JAR="$REPO/proxy/target/egress-proxy.jar"
LOAD=("$JAVA" -cp "$REPO/benchmarks/target/benchmarks.jar" org.egressproxy.bench.peers.PeerLoad)

# ---- ports and work directory ----------------------------------------------------------------
B=${PEERS_PORT_BASE:-21000}
ORIGIN_HTTP=$((B + 80)) ORIGIN_TLS=$((B + 443)) ORIGIN_KONN=$((B + 444))
OURS_HTTP=$((B + 100)) OURS_SNI=$((B + 101)) OURS_KONN=$((B + 102)) OURS_ADMIN=$((B + 190))
BASE_HTTP=$((B + 110)) BASE_SNI=$((B + 111)) BASE_KONN=$((B + 112)) BASE_ADMIN=$((B + 191))
NETTY_TCP=$((B + 120))
SQUID=$((B + 200))
HA_TCP=$((B + 300)) HA_SPLICE=$((B + 301)) HA_HTTP=$((B + 302)) HA_SNI=$((B + 303)) HA_KONN=$((B + 304))
NGX_TCP=$((B + 400)) NGX_HTTP=$((B + 402)) NGX_SNI=$((B + 403)) NGX_KONN=$((B + 404))

WORK=$(mktemp -d /dev/shm/egress-peers.XXXXXX)
chmod 755 "$WORK"
PIDS=()
HOSTS_BACKUP=""
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done # egress-proxy: a second TERM skips draining
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  if [ -n "$HOSTS_BACKUP" ]; then cat "$HOSTS_BACKUP" > /etc/hosts; fi
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- origin content and certificates ---------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/tls" "$WORK/squid" "$WORK/logs"
printf 'egress-proxy benchmark origin: the /small response, one hundred bytes of text, no more ok.\n' \
  > "$WORK/www/small"
head -c $((BIG_MIB << 20)) /dev/zero > "$WORK/www/big" # tmpfs: served from memory
(
  cd "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=allowed.test" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:allowed.test,DNS:*.allowed.test,DNS:denied.test\n' > san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.pem 2>/dev/null
)
printf '127.0.0.1 allowed.test www.allowed.test\n' > "$WORK/hosts"

# ---- configurations ----------------------------------------------------------------------------
STREAM_MODULE="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
cat > "$WORK/origin.conf" <<EOF
$STREAM_MODULE
daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $WORK/origin.pid;
error_log $WORK/origin-error.log warn;
events { worker_connections 19000; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 600s; keepalive_requests 100000000; client_header_timeout 600s;
  default_type application/octet-stream;
  ssl_session_cache off; ssl_session_tickets off; ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:$ORIGIN_HTTP backlog=4096;
    listen 127.0.0.1:$ORIGIN_TLS ssl backlog=4096;
    ssl_certificate $WORK/tls/server.pem; ssl_certificate_key $WORK/tls/server.key;
    root $WORK/www;
  }
}
stream {
  server {
    listen 127.0.0.1:$ORIGIN_KONN ssl;
    ssl_certificate $WORK/tls/server.pem; ssl_certificate_key $WORK/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_alpn konnectivity;
    return "konnectivity-ok\n";
  }
}
EOF

cat > "$WORK/nginx.conf" <<EOF
$STREAM_MODULE
daemon off;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 19000; }
http {
  access_log $WORK/nginx-access.log;
  keepalive_timeout 600s; keepalive_requests 100000000;
  upstream origin { server 127.0.0.1:$ORIGIN_HTTP; keepalive 64; }
  server { listen 127.0.0.1:$NGX_HTTP default_server; return 403; }
  server {
    listen 127.0.0.1:$NGX_HTTP;
    server_name allowed.test *.allowed.test;
    location / {
      proxy_pass http://origin; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$http_host;
    }
  }
}
stream {
  log_format basic '\$remote_addr [\$time_local] \$ssl_preread_server_name \$upstream_addr \$status';
  access_log $WORK/nginx-stream.log basic;
  proxy_timeout 600s;
  map \$ssl_preread_server_name \$tls_up {
    hostnames; allowed.test 127.0.0.1:$ORIGIN_TLS; *.allowed.test 127.0.0.1:$ORIGIN_TLS;
    default 127.0.0.1:1;
  }
  map \$ssl_preread_server_name \$konn_up {
    hostnames; allowed.test 127.0.0.1:$ORIGIN_KONN; *.allowed.test 127.0.0.1:$ORIGIN_KONN;
    default 127.0.0.1:1;
  }
  server { listen 127.0.0.1:$NGX_TCP backlog=4096; proxy_pass 127.0.0.1:$ORIGIN_HTTP; }
  server { listen 127.0.0.1:$NGX_SNI backlog=4096; ssl_preread on; proxy_pass \$tls_up; }
  server { listen 127.0.0.1:$NGX_KONN; ssl_preread on; proxy_pass \$konn_up; }
}
EOF

sni_frontend() { # name port backend: route allowed names by the ClientHello's SNI, reject the rest
  printf '%s\n' "frontend $1" "  bind 127.0.0.1:$2" "  tcp-request inspect-delay 5s" \
    "  acl ok req.ssl_sni -m str -i allowed.test" "  acl ok req.ssl_sni -m end -i .allowed.test" \
    "  tcp-request content accept if ok" "  tcp-request content reject" "  default_backend $3"
}
cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn $(( ($(ulimit -n) - 600) / 2 ))
  maxpipes 200
defaults
  mode tcp
  timeout connect 10s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
frontend relay
  bind 127.0.0.1:$HA_TCP
  default_backend origin_http
frontend relay_splice
  bind 127.0.0.1:$HA_SPLICE
  default_backend origin_http_splice
frontend http_filter
  mode http
  bind 127.0.0.1:$HA_HTTP
  option http-keep-alive
  acl ok req.hdr(host),field(1,:) -m str -i allowed.test
  acl ok req.hdr(host),field(1,:) -m end -i .allowed.test
  http-request deny unless ok
  default_backend origin_http_mode
$(sni_frontend sni $HA_SNI origin_tls)
$(sni_frontend sni_konn $HA_KONN origin_konn)
backend origin_http
  server o 127.0.0.1:$ORIGIN_HTTP
backend origin_http_splice
  option splice-request
  option splice-response
  server o 127.0.0.1:$ORIGIN_HTTP
backend origin_http_mode
  mode http
  http-reuse always
  server o 127.0.0.1:$ORIGIN_HTTP
backend origin_tls
  server o 127.0.0.1:$ORIGIN_TLS
backend origin_konn
  server o 127.0.0.1:$ORIGIN_KONN
EOF

chown proxy "$WORK/squid" 2>/dev/null || true
cat > "$WORK/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID
pid_filename $WORK/squid/squid.pid
cache_log $WORK/squid/cache.log
access_log stdio:$WORK/squid/access.log
coredump_dir $WORK/squid
visible_hostname bench
hosts_file $WORK/hosts
max_filedescriptors 20000
cache deny all
shutdown_lifetime 1 seconds
read_timeout 10 minutes
client_idle_pconn_timeout 10 minutes
acl allowed dstdomain .allowed.test
acl ports port $ORIGIN_HTTP $ORIGIN_TLS $ORIGIN_KONN
http_access deny !ports
http_access allow allowed
http_access deny all
EOF

PORTS="[$ORIGIN_HTTP, $ORIGIN_TLS, $ORIGIN_KONN]"
ours_yaml() { # name http sni konn admin: the configuration of one egress-proxy
  mkdir -p "$WORK/$1"; cat > "$WORK/$1/proxy.yaml" <<EOF
listeners:
  - {name: explicit, mode: http-proxy, bind: "127.0.0.1:$2"}
  - {name: sni, mode: tls-sni, bind: "127.0.0.1:$3", upstreamPort: $ORIGIN_TLS}
  - {name: sni-konn, mode: tls-sni, bind: "127.0.0.1:$4", upstreamPort: $ORIGIN_KONN}
admin: {bind: "127.0.0.1:$5"}
policy:
  rules:
    - {allow: allowed.test, ports: $PORTS}
    - {allow: "*.allowed.test", ports: $PORTS}
  allowDestinationCidrs: [127.0.0.0/8]
resolver:
  hosts: {allowed.test: 127.0.0.1, www.allowed.test: 127.0.0.1}
limits: {maxConnectionsPerClient: 50000}
decisionLog: {path: "$WORK/logs/$1-decisions.jsonl"} # apart from the config, as deployed (/var/log, /etc): the config watcher wakes for any file in its directory
EOF
}
ours_yaml ours "$OURS_HTTP" "$OURS_SNI" "$OURS_KONN" "$OURS_ADMIN"
ours_yaml base "$BASE_HTTP" "$BASE_SNI" "$BASE_KONN" "$BASE_ADMIN"
BASEP=""; [ -n "$BASE_JAR" ] && BASEP=base

# ---- start everything --------------------------------------------------------------------------
wait_port() { # port, name, pid
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$2 exited; its log:" >&2; cat "$WORK/$2.out" >&2; exit 1; }
    sleep 0.1
  done
  echo "$2 does not listen on $1" >&2; exit 1
}
start() { # name, port, command...
  local name=$1 port=$2; shift 2
  "$@" > "$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  eval "PID_${name//-/_}=$!"
  wait_port "$port" "$name" $!
}
start_proxy() { # name port jar
  local flags=${OURS_JVM_ARGS-$OURS_DEFAULT_JVM_ARGS} java=$OURS_JAVA
  [ "$1" = base ] && flags=${BASE_JVM_ARGS:-$flags} java=$BASE_JAVA
  # shellcheck disable=SC2086 # JVM flags for egress-proxy (profiling, heap, transport)
  start "$1" "$2" "$java" $flags -jar "$3" run --config "$WORK/$1/proxy.yaml"
  for _ in $(seq 1 100); do grep -q "ready\\." "$WORK/$1.out" && break; sleep 0.1; done
  grep -q "ready\\." "$WORK/$1.out" || { cat "$WORK/$1.out" >&2; exit 1; }
}
launch() { # name: (re)starts one of the processes
  case $1 in
    origin) start origin "$ORIGIN_HTTP" nginx -c "$WORK/origin.conf" -p "$WORK" ;;
    nginx) start nginx "$NGX_SNI" nginx -c "$WORK/nginx.conf" -p "$WORK" ;;
    haproxy) start haproxy "$HA_SNI" haproxy -db -f "$WORK/haproxy.cfg" ;;
    squid) start squid "$SQUID" squid -N -f "$WORK/squid.conf" ;;
    ours) start_proxy ours "$OURS_HTTP" "$PROXY_JAR" ;;
    base) start_proxy base "$BASE_HTTP" "$BASE_JAR" ;;
    netty-relay) # the same JVM flags as egress-proxy's
      # shellcheck disable=SC2086
      start netty-relay "$NETTY_TCP" "$OURS_JAVA" ${OURS_JVM_ARGS-$OURS_DEFAULT_JVM_ARGS} \
      -cp "$REPO/benchmarks/target/benchmarks.jar" org.egressproxy.bench.peers.NettyRelay \
      --listen "127.0.0.1:$NETTY_TCP" --target "127.0.0.1:$ORIGIN_HTTP" \
      --splice "${NETTY_RELAY_SPLICE:-false}" ;;
  esac
}
stop() { # name: stops one of the processes (egress-proxy: a second TERM skips its draining)
  local var="PID_$1" p keep=()
  local pid=${!var}
  kill "$pid" 2>/dev/null; sleep 0.3; kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}
log "starting the origin and the peers (work directory $WORK)"
for name in origin nginx haproxy squid ours $BASEP netty-relay; do launch $name; done

if ! grep -qE '^127\.0\.0\.1[[:space:]].*\ballowed\.test\b' /etc/hosts; then
  HOSTS_BACKUP="$WORK/etc-hosts.backup"
  cp /etc/hosts "$HOSTS_BACKUP"
  echo "127.0.0.1 allowed.test www.allowed.test denied.test # egress-proxy peers benchmark" \
    >> /etc/hosts
fi

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; } # workload peer round metric value

# ---- W6: correctness (first: a broken peer would make its figures meaningless) ----------------
CA="$WORK/tls/ca.pem"
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
connect_code() { curl -s -o /dev/null -w '%{http_connect}' --max-time 5 "$@" || true; }
sclient() { timeout 5 openssl s_client "$@" < /dev/null 2>&1 || true; } # "New, TLS...": handshake done
w6() { # peer check result
  record W6 "$1" 0 "$2" "$3"
}
for peer in ours squid; do
  port=$OURS_HTTP; [ $peer = squid ] && port=$SQUID
  P=(--proxy "http://127.0.0.1:$port")
  [ "$(code "${P[@]}" "http://allowed.test:$ORIGIN_HTTP/small")" = 200 ] \
    && [ "$(code "${P[@]}" --cacert "$CA" "https://www.allowed.test:$ORIGIN_TLS/small")" = 200 ] \
    && w6 "$peer (CONNECT)" allow yes || w6 "$peer (CONNECT)" allow "**no**"
  [ "$(connect_code "${P[@]}" --cacert "$CA" "https://denied.test:$ORIGIN_TLS/small")" = 403 ] \
    && [ "$(code "${P[@]}" "http://denied.test:$ORIGIN_HTTP/small")" = 403 ] \
    && w6 "$peer (CONNECT)" deny yes || w6 "$peer (CONNECT)" deny "**no**"
  out=$(sclient -proxy "127.0.0.1:$port" -connect "allowed.test:$ORIGIN_TLS" -servername denied.test)
  if echo "$out" | grep -q "^New, TLS"; then w6 "$peer (CONNECT)" sni "**no**"
  else w6 "$peer (CONNECT)" sni yes; fi
  out=$(sclient -proxy "127.0.0.1:$port" -connect "allowed.test:$ORIGIN_KONN" \
    -servername allowed.test -alpn konnectivity -ign_eof)
  echo "$out" | grep -q "ALPN protocol: konnectivity" && echo "$out" | grep -q konnectivity-ok \
    && w6 "$peer (CONNECT)" alpn yes || w6 "$peer (CONNECT)" alpn "**no**"
done
for peer in ours haproxy nginx; do
  case $peer in
    ours) port=$OURS_SNI konn=$OURS_KONN ;;
    haproxy) port=$HA_SNI konn=$HA_KONN ;;
    nginx) port=$NGX_SNI konn=$NGX_KONN ;;
  esac
  [ "$(code --cacert "$CA" --resolve "www.allowed.test:$port:127.0.0.1" \
    "https://www.allowed.test:$port/small")" = 200 ] \
    && w6 "$peer (SNI)" allow yes || w6 "$peer (SNI)" allow "**no**"
  [ "$(code --cacert "$CA" --resolve "denied.test:$port:127.0.0.1" \
    "https://denied.test:$port/small")" = 000 ] \
    && w6 "$peer (SNI)" deny yes || w6 "$peer (SNI)" deny "**no**"
  w6 "$peer (SNI)" sni "n/a"
  out=$(sclient -connect "127.0.0.1:$konn" -servername allowed.test -alpn konnectivity -ign_eof)
  echo "$out" | grep -q "ALPN protocol: konnectivity" && echo "$out" | grep -q konnectivity-ok \
    && w6 "$peer (SNI)" alpn yes || w6 "$peer (SNI)" alpn "**no**"
done
# The HTTP filters of W3, by Host:
for peer in haproxy nginx; do
  port=$HA_HTTP; [ $peer = nginx ] && port=$NGX_HTTP
  [ "$(code -H 'Host: allowed.test' "http://127.0.0.1:$port/small")" = 200 ] \
    && w6 "$peer (HTTP)" allow yes || w6 "$peer (HTTP)" allow "**no**"
  [ "$(code -H 'Host: denied.test' "http://127.0.0.1:$port/small")" = 403 ] \
    && w6 "$peer (HTTP)" deny yes || w6 "$peer (HTTP)" deny "**no**"
  w6 "$peer (HTTP)" sni "n/a"
  w6 "$peer (HTTP)" alpn "n/a"
done
log "W6 correctness: $(awk -F'\t' '$1=="W6"{printf "%s/%s=%s ", $2, $4, $5}' "$RESULTS")"
[ "$CHECK_ONLY" = 1 ] && exit 0

# ---- the workloads -----------------------------------------------------------------------------
# Each peer's client invocation, by workload. Rounds rotate the order: A B C, B C A, C A B, ...
T_HTTP="allowed.test:$ORIGIN_HTTP"
load_args() { # workload peer -> PeerLoad --via/--addr/--target
  case $2 in
    direct) echo "--via tcp --addr 127.0.0.1:$ORIGIN_HTTP --target $T_HTTP" ;;
    ours) echo "--via connect --addr 127.0.0.1:$OURS_HTTP --target $T_HTTP" ;;
    base) echo "--via connect --addr 127.0.0.1:$BASE_HTTP --target $T_HTTP" ;;
    squid) echo "--via connect --addr 127.0.0.1:$SQUID --target $T_HTTP" ;;
    haproxy-splice) echo "--via tcp --addr 127.0.0.1:$HA_SPLICE --target $T_HTTP" ;;
    haproxy) echo "--via tcp --addr 127.0.0.1:$HA_TCP --target $T_HTTP" ;;
    nginx) echo "--via tcp --addr 127.0.0.1:$NGX_TCP --target $T_HTTP" ;;
    netty-relay) echo "--via tcp --addr 127.0.0.1:$NETTY_TCP --target $T_HTTP" ;;
  esac
}
jnum() { jq -r ".$1" <<< "$2"; }
peer_pid() { # peer -> the process whose CPU time it costs (the origin's is not counted)
  case $1 in
    direct) echo "" ;; ours) echo "$PID_ours" ;; base) echo "$PID_base" ;; squid) echo "$PID_squid" ;;
    haproxy|haproxy-splice) echo "$PID_haproxy" ;; nginx) echo "$PID_nginx" ;;
    netty-relay) echo "$PID_netty_relay" ;;
  esac
}
cpu_ticks() { # pid: user + system clock ticks of it and its descendants (nginx's, Squid's workers)
  "${LOAD[@]}" cpu --pids "$1"
}

run_w1() { # peer round
  local r; r=$("${LOAD[@]}" bulk $(load_args W1 "$1") --path /big --seconds "$BULK_S" \
    --warmup "$LOAD_WARM")
  [ "$2" -ge 0 ] && record W1 "$1" "$2" MBps "$(jnum MBps "$r")"
  log "W1 $1 round $2: $r"
}
run_w2() {
  local pids; pids=$(peer_pid "$1")
  local r; r=$("${LOAD[@]}" short $(load_args W2 "$1") --path /small --concurrency 32 \
    --seconds "$SHORT_S" --warmup "$LOAD_WARM" ${pids:+--pids "$pids"})
  if [ "$2" -ge 0 ]; then
    for m in connsPerSec p50ms p99ms failed; do record W2 "$1" "$2" $m "$(jnum $m "$r")"; done
    [ -n "$pids" ] && record W2 "$1" "$2" cpuUs "$(jnum cpuUsPerConn "$r")"
  fi
  log "W2 $1 round $2: $r"
}
wrk_run() { # workload peer round -- wrk args
  local w=$1 peer=$2 round=$3; shift 4
  local pid t0 total; pid=$(peer_pid "$peer"); [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  local out; out=$(wrk -t1 -c32 -d"${WRK_S}s" --latency "$@" 2>&1)
  local rps p99 errors
  total=$(awk '/requests in/ {print $1}' <<< "$out")
  if [ -n "$pid" ] && [ "${total:-0}" -gt 0 ] && [ "$round" -ge 0 ]; then
    record "$w" "$peer" "$round" cpuUs "$(awk -v t=$(( $(cpu_ticks "$pid") - t0 )) -v n="$total" \
      'BEGIN {printf "%.1f", t * 10000 / n}')" # 100 ticks a second: 10,000 us a tick
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
  p99=$(awk '$1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[a-z]/,"",v);
    print (u=="us") ? v/1000 : (u=="s") ? v*1000 : v}' <<< "$out")
  errors=$(awk '/Socket errors/ {gsub(/,/,""); s+=$4+$6+$8+$10} /Non-2xx/ {s+=$NF}
    END {print s+0}' <<< "$out")
  if [ "$round" -ge 0 ]; then
    record "$w" "$peer" "$round" rps "${rps:-0}"
    record "$w" "$peer" "$round" p99ms "${p99:-NaN}"
    record "$w" "$peer" "$round" errors "${errors:-0}"
  fi
  log "$w $peer round $round: ${rps:-?} req/s, p99 ${p99:-?} ms, errors ${errors:-0}"
}
cat > "$WORK/abs.lua" <<EOF
wrk.path = "http://allowed.test:$ORIGIN_HTTP/small"
wrk.headers["Host"] = "allowed.test:$ORIGIN_HTTP"
EOF
run_w3() {
  case $1 in
    direct) wrk_run W3 "$1" "$2" -- -H "Host: allowed.test" "http://127.0.0.1:$ORIGIN_HTTP/small" ;;
    ours) wrk_run W3 "$1" "$2" -- -s "$WORK/abs.lua" "http://127.0.0.1:$OURS_HTTP/" ;;
    base) wrk_run W3 "$1" "$2" -- -s "$WORK/abs.lua" "http://127.0.0.1:$BASE_HTTP/" ;;
    squid) wrk_run W3 "$1" "$2" -- -s "$WORK/abs.lua" "http://127.0.0.1:$SQUID/" ;;
    haproxy) wrk_run W3 "$1" "$2" -- -s "$WORK/abs.lua" "http://127.0.0.1:$HA_HTTP/" ;;
    nginx) wrk_run W3 "$1" "$2" -- -s "$WORK/abs.lua" "http://127.0.0.1:$NGX_HTTP/" ;;
  esac
}
run_w4() {
  local port
  case $1 in
    direct) port=$ORIGIN_TLS ;; ours) port=$OURS_SNI ;; base) port=$BASE_SNI ;; haproxy) port=$HA_SNI ;; nginx) port=$NGX_SNI ;;
  esac
  wrk_run W4 "$1" "$2" -- -H "Connection: close" "https://allowed.test:$port/small"
}
run_w5() {
  local pids jcmd=()
  # A fresh process for each peer and round (allocators keep what they once took), then 100
  # tunnels opened and closed: pools set up, classes loaded, code compiled.
  stop "$1"
  launch "$1"
  local var="PID_$1"
  "${LOAD[@]}" idle $(load_args W5 "$1") --path /small --count 100 --pids "${!var}" > /dev/null
  sleep 2
  case $1 in
    ours) pids=$PID_ours; jcmd=(--jcmd "$PID_ours") ;;
    base) pids=$PID_base; jcmd=(--jcmd "$PID_base") ;;
    squid) pids=$PID_squid ;; haproxy) pids=$PID_haproxy ;; nginx) pids=$PID_nginx ;;
  esac
  local r; r=$("${LOAD[@]}" idle $(load_args W5 "$1") --path /small --count "$IDLE" \
    --pids "$pids" "${jcmd[@]}")
  for m in KBperTunnel heapKBperTunnel ok failed rssBeforeKB rssAfterKB; do
    record W5 "$1" "$2" $m "$(jnum $m "$r")"
  done
  log "W5 $1 round $2: $r"
  sleep 2 # the peers close their upstream sides
}

workload() { # name rounds peers...
  local w=$1 rounds=$2; shift 2
  [[ ",$ONLY," == *",$w,"* ]] || return 0
  local peers=() n r i p
  for p in "$@"; do
    [ -z "$PEERS" ] || [ "$p" = direct ] || [[ ",$PEERS," == *",$p,"* ]] && peers+=("$p")
  done
  n=${#peers[@]}
  for ((r = -WARMUP; r < rounds; r++)); do
    for ((i = 0; i < n; i++)); do
      local p=${peers[$(((i + (r < 0 ? 0 : r)) % n))]}
      "run_${w,,}" "$p" "$r"
    done
  done
}
START=$(date +%s)
workload W1 "$ROUNDS" direct ours $BASEP squid haproxy-splice haproxy nginx netty-relay
workload W2 "$ROUNDS" direct ours $BASEP squid haproxy haproxy-splice nginx netty-relay
workload W3 "$ROUNDS" direct ours $BASEP squid haproxy nginx
workload W4 "$ROUNDS" direct ours $BASEP haproxy nginx
WARMUP=0 workload W5 "$IDLE_ROUNDS" ours $BASEP squid haproxy nginx
ELAPSED=$(( $(date +%s) - START ))
DECISIONS=$(wc -l < "$WORK/logs/ours-decisions.jsonl")

# ---- report ------------------------------------------------------------------------------------
ran() { [[ ",$ONLY," == *",$1,"* ]]; }
has() { awk -F'\t' -v w="$1" -v p="$2" '$1==w && $2==p {f=1} END {exit !f}' "$RESULTS"; }
median() { # workload peer metric
  awk -F'\t' -v w="$1" -v p="$2" -v m="$3" '$1==w && $2==p && $4==m {print $5}' "$RESULTS" \
    | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "NaN"; else if (NR%2) print v[(NR+1)/2];
      else print (v[NR/2]+v[NR/2+1])/2}'
}
all_of() { awk -F'\t' -v w="$1" -v p="$2" -v m="$3" '$1==w && $2==p && $4==m {printf "%s%s", s, $5; s=", "}' "$RESULTS"; }
paired() { # workload metric: ours / base of each round both ran in, in round order
  awk -F'\t' -v w="$1" -v m="$2" '$1==w && $4==m && $3>=0 && ($2=="ours" || $2=="base") {
      v[$2 SUBSEP $3]=$5; r[$3]=1 }
    END { for (i in r) if ((("ours" SUBSEP i) in v) && (("base" SUBSEP i) in v) && v["base" SUBSEP i] > 0)
      printf "%d %.3f\n", i, v["ours" SUBSEP i] / v["base" SUBSEP i] }' "$RESULTS" | sort -n | awk '{print $2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 == 0) print "-"; else printf "%.2f×", a/b}'; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN {if (v == "NaN" || v == "") print "-"; else printf "%\047.*f", d, v}'; }
label() { # workload peer
  case $1/$2 in
    */direct) echo "direct (client → origin)" ;;
    W4/ours) echo "**egress-proxy** tls-sni (decision log on)" ;;
    */ours) echo "**egress-proxy** (decision log on)" ;;
    */base) echo "egress-proxy from $(basename "$BASE_JAR") (decision log on)" ;;
    W5/squid) echo "Squid (CONNECT)" ;;
    */squid) echo "Squid (CONNECT / absolute-form, access.log on)" ;;
    W3/haproxy) echo "HAProxy HTTP mode, Host ACL" ;;
    W4/haproxy) echo "HAProxy req.ssl_sni ACL" ;;
    */haproxy-splice) echo "HAProxy TCP relay, splice (no CONNECT, no policy)" ;;
    */haproxy) echo "HAProxy TCP relay (no CONNECT, no policy)" ;;
    W3/nginx) echo "nginx HTTP proxy, server_name (access_log on)" ;;
    W4/nginx) echo "nginx ssl_preread map" ;;
    */nginx) echo "nginx stream relay (no CONNECT, no policy)" ;;
    */netty-relay) echo "bare Netty relay on egress-proxy's runtime$([ "${NETTY_RELAY_SPLICE:-false}" = true ] && echo ', splice') (no CONNECT, no policy, no log)" ;;
  esac
}
wrk_table() { # workload unit peers...: the wrk figures of one workload
  local w=$1 unit=$2; shift 2
  echo "| peer | $unit | ratio to direct | p99 ms | peer's CPU µs per ${unit%s/s} | errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  local d v p; d=$(median "$w" direct rps)
  for p in "$@"; do
    has "$w" "$p" || continue
    v=$(median "$w" "$p" rps)
    echo "| $(label "$w" "$p") | $(fmt "$v") | $(ratio "$v" "$d") | $(fmt "$(median "$w" "$p" p99ms)" 2) |" \
      "$(fmt "$(median "$w" "$p" cpuUs)" 1) |" \
      "$(awk -F'\t' -v w="$w" -v p="$p" '$1==w && $2==p && $4=="errors" {s+=$5} END {print s+0}' "$RESULTS") |"
  done
}
jdk() { "$1" -version 2>&1 | head -1 | sed 's/"//g'; } # the version line of a java
cmp() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {print (a != "NaN" && b != "NaN" && a >= f*b) ? "**met**" : "**not met**"}'; }
{
  MODE=$([ "$QUICK" = 1 ] && echo "quick (smoke test)" || echo full)
  echo "## Side by side with Squid, HAProxy and nginx — $(date -u +%Y-%m-%d) ($MODE)"
  echo
  echo "- Machine: $(nproc) × $(lscpu | sed -n 's/^Model name: *//p' | head -1)," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)."
  echo "- Versions: egress-proxy $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo '+changes')," \
    "egress-proxy on $(jdk "$OURS_JAVA")$([ -n "$BASE_JAR" ] && [ "$BASE_JAVA" != "$OURS_JAVA" ] && echo " (base on $(jdk "$BASE_JAVA"))")," \
    "load on $(jdk "$JAVA"), Squid $(squid -v | sed -n 's/.*Version //p' | head -1)," \
    "HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), nginx $(nginx -v 2>&1 | sed 's/.*\///'), wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}')," \
    "$(openssl version | awk '{print $1, $2}')."
  echo "- Command: \`$CMDLINE\` ($((ELAPSED / 60)) min $((ELAPSED % 60)) s of workloads)."
  echo "- Set-up: everything on 127.0.0.1 on the same cores: the origin (nginx, 1 worker, /small" \
    "$(wc -c < "$WORK/www/small") B, /big $BIG_MIB MiB from tmpfs, plain and TLS with a P-256 certificate, no session" \
    "resumption), the peers (defaults: egress-proxy one event loop per core, JVM flags \`${OURS_JVM_ARGS-$OURS_DEFAULT_JVM_ARGS}\`; HAProxy $(nproc) threads;" \
    "nginx one worker per core; Squid one process) and the load (PeerLoad: one Netty event loop; wrk -t1 -c32)." \
    "$ROUNDS round(s) per workload$([ "$WARMUP" = 1 ] && echo ' after a warm-up round'), the peers' order rotated" \
    "each round; medians, and ratios of medians to the direct row. egress-proxy's decision log was on:" \
    "$DECISIONS lines written."
  echo "- Peer's CPU: the user and system time of the peer's processes (and their children) during" \
    "a measurement, divided by the connections or requests it served; steadier than the rates here," \
    "where the load and the origin take their share of the same cores. For HAProxy, one process" \
    "serves every HAProxy row."
  echo
  if ran W1; then
  echo "### W1 bulk: one connection downloading /big repeatedly for ${BULK_S} s"
  echo
  echo "| peer | MB/s (median) | ratio to direct | each round |"
  echo "|---|---:|---:|---|"
  d=$(median W1 direct MBps)
  for p in direct ours $BASEP squid haproxy-splice haproxy nginx netty-relay; do
    has W1 "$p" || continue
    v=$(median W1 $p MBps)
    echo "| $(label W1 $p) | $(fmt "$v") | $(ratio "$v" "$d") | $(all_of W1 $p MBps) |"
  done
  fi
  echo
  if ran W2; then
  echo "### W2 short tunnels: [CONNECT → 200 →] GET /small → close, 32 concurrent, ${SHORT_S} s"
  echo
  echo "| peer | connections/s | ratio to direct | p50 ms | p99 ms | peer's CPU µs per connection | failed |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  d=$(median W2 direct connsPerSec)
  for p in direct ours $BASEP squid haproxy haproxy-splice nginx netty-relay; do
    has W2 "$p" || continue
    v=$(median W2 $p connsPerSec)
    echo "| $(label W2 $p) | $(fmt "$v") | $(ratio "$v" "$d") | $(fmt "$(median W2 $p p50ms)" 2) |" \
      "$(fmt "$(median W2 $p p99ms)" 2) | $(fmt "$(median W2 $p cpuUs)" 1) | $(awk -F'\t' -v p=$p '$1=="W2" && $2==p && $4=="failed" {s+=$5} END {print s+0}' "$RESULTS") |"
  done
  fi
  echo
  if ran W3; then
  echo "### W3 absolute-form keep-alive GET http://allowed.test/small, 32 connections (wrk), ${WRK_S} s"
  echo
  wrk_table W3 requests/s direct ours $BASEP squid haproxy nginx
  fi
  echo
  if ran W4; then
  echo "### W4 transparent TLS: new TCP + full handshake (SNI) + GET /small + close, 32 concurrent (wrk), ${WRK_S} s"
  echo
  wrk_table W4 connections/s direct ours $BASEP haproxy nginx
  fi
  echo
  if ran W5; then
  echo "### W5 memory: RSS before and after $IDLE idle tunnels (each after one kept-alive GET /small)"
  echo
  echo "Each peer a fresh process (and its children) per round, 100 tunnels opened and closed first."
  echo "egress-proxy: JVM flags \`${OURS_JVM_ARGS-$OURS_DEFAULT_JVM_ARGS}\`; both RSS readings after a \`jcmd GC.run\`."
  echo
  echo "| peer | RSS KB per tunnel (median) | of which live Java heap | RSS before → after, KB | tunnels up |"
  echo "|---|---:|---:|---|---:|"
  for p in ours $BASEP squid haproxy nginx; do
    has W5 "$p" || continue
    echo "| $(label W5 $p) | $(fmt "$(median W5 $p KBperTunnel)" 1) |" \
      "$([ $p = ours ] || [ $p = base ] && fmt "$(median W5 $p heapKBperTunnel)" 1 || echo -) |" \
      "$(fmt "$(median W5 $p rssBeforeKB)") → $(fmt "$(median W5 $p rssAfterKB)") | $(median W5 $p ok) |"
  done
  fi
  echo
  echo "### W6 correctness under the same set-up"
  echo
  echo "| peer | allowed name through | denied name refused | CONNECT host ≠ SNI refused | ALPN konnectivity through |"
  echo "|---|---|---|---|---|"
  for p in "ours (CONNECT)" "squid (CONNECT)" "ours (SNI)" "haproxy (SNI)" "nginx (SNI)" "haproxy (HTTP)" "nginx (HTTP)"; do
    g() { awk -F'\t' -v p="$p" -v c="$1" '$1=="W6" && $2==p && $4==c {print $5}' "$RESULTS"; }
    echo "| $p | $(g allow) | $(g deny) | $(g sni) | $(g alpn) |"
  done
  echo
  if [ -n "$BASEP" ]; then
  echo "### egress-proxy against $(basename "$BASE_JAR"), round by round"
  echo
  echo "Ours over base within each round, where both ran back to back: the machine's drift between"
  echo "rounds cancels out of these, which it does not out of the medians above."
  echo
  echo "| figure | ours / base, each round | median |"
  echo "|---|---|---:|"
  for wm in "W1 MBps MB/s" "W2 connsPerSec connections/s" "W2 cpuUs CPU µs/connection" \
      "W3 rps requests/s" "W3 cpuUs CPU µs/request" "W4 rps connections/s" \
      "W4 cpuUs CPU µs/connection" "W5 KBperTunnel KB/idle tunnel"; do
    read -r w m what <<< "$wm"
    rs=$(paired "$w" "$m")
    [ -n "$rs" ] || continue
    echo "| $w $what | $(paste -sd, <<< "$rs" | sed 's/,/, /g') |" \
      "$(sort -g <<< "$rs" | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f", (v[NR/2]+v[NR/2+1])/2}') |"
  done
  echo
  fi
  echo "### Against the targets of issue 6 (ratios of this run)"
  echo
  o1=$(median W1 ours MBps) h1=$(median W1 haproxy-splice MBps)
  ran W1 && echo "- W1 ≥ HAProxy with splice: $(ratio "$o1" "$h1") of it — $(cmp "$o1" "$h1" 1)"
  o2=$(median W2 ours connsPerSec) s2=$(median W2 squid connsPerSec) h2=$(median W2 haproxy connsPerSec)
  ran W2 && echo "- W2 ≥ 2× Squid: $(ratio "$o2" "$s2") — $(cmp "$o2" "$s2" 2); ≥ 0.9× HAProxy's plain TCP relay: $(ratio "$o2" "$h2") — $(cmp "$o2" "$h2" 0.9)"
  o3=$(median W3 ours rps) s3=$(median W3 squid rps)
  ran W3 && echo "- W3 ≥ 2× Squid: $(ratio "$o3" "$s3") — $(cmp "$o3" "$s3" 2)"
  o4=$(median W4 ours rps) h4=$(median W4 haproxy rps)
  ran W4 && echo "- W4 ≥ HAProxy: $(ratio "$o4" "$h4") — $(cmp "$o4" "$h4" 1)"
  o5=$(median W5 ours KBperTunnel)
  ran W5 && echo "- W5 ≤ 6 KB per idle tunnel: $(fmt "$o5" 1) KB of RSS ($(fmt "$(median W5 ours heapKBperTunnel)" 1) KB of it live heap) — $(cmp 6 "$o5" 1)"
  true
} > "$OUT"
cat "$OUT"
if [ "$APPEND" = 1 ]; then { echo; cat "$OUT"; } >> "$REPO/benchmarks/RESULTS.md"; fi
cp "$RESULTS" "${OUT%.md}.tsv"
log "report: $OUT (raw figures: ${OUT%.md}.tsv)"
