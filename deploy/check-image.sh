#!/usr/bin/env bash
# Builds the Dockerfile and runs the image the way the README tells an operator to, checking what
# the Dockerfile promises: user 10001, the documented paths and ports, the JVM flags in effect
# under a memory limit, the shipped configuration valid, /healthz and /readyz, the HEALTHCHECK
# turning healthy, refusals and the decision log on standard output, a configuration mounted over
# the shipped one, SIGHUP reloading it, and `docker stop` draining to exit code 0.
#
#   deploy/check-image.sh [--keep]      (as root, on Linux; ~3 min on 2 cores with stand-ins)
#
# Engine: a running Docker engine if `docker info` answers; otherwise it starts one of its own
# (Debian's docker.io, installed if missing) with its state in a temporary directory, and stops
# it and removes that directory at the end.
# Base images: pulled. Where no registry serves them (this project's CI and build machines reach
# only Maven Central, Debian and npm) it builds stand-ins from Debian bookworm with debootstrap,
# tagged with the Dockerfile's FROM names: eclipse-temurin:17-jre <- openjdk-17-jre-headless;
# maven:3.9-eclipse-temurin-17 <- the same with openjdk-17-jdk-headless and maven added. It says
# so, and the check then covers this project's Dockerfile steps, not Temurin's images. The
# stand-ins trust the host's own CA certificates (/usr/local/share/ca-certificates), so that
# Maven reaches Central from behind a TLS-inspecting egress, and are removed at the end.
# --keep: leave the engine, the images and the containers for a look afterwards.
# Exit status: 0 when every check passed, 1 when one failed (it says which), 2 when it could not
# run (not root, no engine, no base image).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=check-image
IMAGE=egress-proxy:check
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1
PORT_PROXY=31280 PORT_ADMIN=31290 PORT_HOST_PROXY=31281 PORT_HOST_ADMIN=31291 PORT_ORIGIN=31200
WORK=$(mktemp -d /var/tmp/egress-image-check.XXXXXX)
ORIGIN_PID="" STAND_INS=() CONTAINERS=()
# shellcheck source=deploy/check-lib.sh
. "$REPO/deploy/check-lib.sh"

cleanup() {
  set +e
  [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null
  if [ "$KEEP" = 1 ]; then
    say "kept: containers ${CONTAINERS[*]:-none}, image $IMAGE"
  else
    for c in "${CONTAINERS[@]}"; do docker rm -f "$c" > /dev/null 2>&1; done
    docker rmi -f "$IMAGE" "${STAND_INS[@]}" > /dev/null 2>&1
  fi
  engine_down
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root (it may start a Docker engine and uses debootstrap)"
engine_up

# ---- base images: pulled, or stand-ins from Debian ----------------------------------------
# Both stand-ins start from one debootstrap (the JRE's); the build stage's adds the JDK and
# Maven to a copy of it, which takes seconds where a debootstrap of its own takes a minute.
for image in $(awk 'toupper($1) == "FROM" {print $2}' "$REPO/Dockerfile"); do
  if docker image inspect "$image" > /dev/null 2>&1 || timeout 120 docker pull -q "$image" > /dev/null 2>&1; then
    say "base image $image: from a registry"
    continue
  fi
  case $image in
    eclipse-temurin:17-jre|maven:3.9-eclipse-temurin-17) STAND_INS+=("$image") ;;
    *) die "no registry serves $image, and there is no stand-in for it" ;;
  esac
done
if [ ${#STAND_INS[@]} -gt 0 ]; then
  say "no registry serves ${STAND_INS[*]}: building stand-ins from Debian bookworm" \
    "(openjdk-17-jre-headless; for the build stage also openjdk-17-jdk-headless and maven)"
  debian_root "$WORK/rootfs-jre" openjdk-17-jre-headless,ca-certificates-java
  case " ${STAND_INS[*]} " in *" maven:3.9-eclipse-temurin-17 "*)
    cp -a "$WORK/rootfs-jre" "$WORK/rootfs-maven"
    debian_add "$WORK/rootfs-maven" "openjdk-17-jdk-headless maven"
    debian_import "$WORK/rootfs-maven" maven:3.9-eclipse-temurin-17 ;;
  esac
  case " ${STAND_INS[*]} " in
    *" eclipse-temurin:17-jre "*) debian_import "$WORK/rootfs-jre" eclipse-temurin:17-jre ;;
    *) rm -rf "$WORK/rootfs-jre" ;;
  esac
  say "NOTE: built on stand-in base images (${STAND_INS[*]}), not the registry's"
fi

# ---- build ------------------------------------------------------------------------------
say "docker build -t $IMAGE . (the build stage downloads from Maven Central)"
if ! docker build --network host -t "$IMAGE" "$REPO" > "$WORK/build.log" 2>&1; then
  tail -30 "$WORK/build.log"
  fail "docker build"
  exit 1
fi
pass "docker build"

# ---- the image's configuration ----------------------------------------------------------
inspect() { docker image inspect -f "$1" "$IMAGE"; }
check "runs as user 10001:10001" test "$(inspect '{{.Config.User}}')" = 10001:10001
check "exposes 3128, 8443, 8080 and 9090" \
  test "$(inspect '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}')" = "3128/tcp 8080/tcp 8443/tcp 9090/tcp "
check "has a HEALTHCHECK on /healthz" grep -q /healthz <<< "$(inspect '{{json .Config.Healthcheck}}')"
check "runs 'run --config /etc/egress-proxy/proxy.yaml' by default" \
  test "$(inspect '{{json .Config.Cmd}}')" = '["run","--config","/etc/egress-proxy/proxy.yaml"]'
check "the jar, the configuration and the catalogs at their documented paths" \
  docker run --rm --entrypoint bash "$IMAGE" -c \
  'test -s /opt/egress-proxy/egress-proxy.jar && test -s /etc/egress-proxy/proxy.yaml && ls /etc/egress-proxy/catalog/aks-global.yaml'
check "/etc/egress-proxy/proxy.yaml is deploy/kubernetes/proxy.yaml" \
  cmp <(docker run --rm --entrypoint cat "$IMAGE" /etc/egress-proxy/proxy.yaml) "$REPO/deploy/kubernetes/proxy.yaml"
check "the shipped configuration is valid in the image (validate: exit 0)" \
  docker run --rm "$IMAGE" validate --config /etc/egress-proxy/proxy.yaml

# The ENTRYPOINT's JVM flags, in effect under a 1 GiB, 1-CPU limit (where the JVM would pick
# Serial GC by itself): G1, heap 35 % of the limit, 256 MiB of direct memory.
docker run --rm -m 1g --cpus 1 -e JAVA_TOOL_OPTIONS=-XX:+PrintFlagsFinal "$IMAGE" \
  validate --config /etc/egress-proxy/proxy.yaml > "$WORK/flags.txt" 2>&1 || true
flag() { awk -v f="$1" '$2 == f {print $4}' "$WORK/flags.txt"; }
check "G1 under a 1-CPU, 1 GiB limit" test "$(flag UseG1GC)" = true
check "heap 35 % of a 1 GiB limit (MaxHeapSize $(flag MaxHeapSize))" \
  awk -v h="$(flag MaxHeapSize)" 'BEGIN { exit !(h >= 0.33 * 2^30 && h <= 0.36 * 2^30) }'
check "direct memory 256 MiB" test "$(flag MaxDirectMemorySize)" = 268435456

# ---- run as shipped ---------------------------------------------------------------------
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
wait_for() { # url: until it answers 200, at most 60 s
  for _ in $(seq 1 120); do [ "$(http_code "$1")" = 200 ] && return 0; sleep 0.5; done
  return 1
}
C=egress-image-check
CONTAINERS+=("$C")
docker rm -f "$C" > /dev/null 2>&1 || true
# The image's HEALTHCHECK command, probed every second here rather than every 30 s (docker run
# takes the command from the image and only the timing from these flags).
docker run -d --name "$C" -p "127.0.0.1:$PORT_PROXY:3128" -p "127.0.0.1:$PORT_ADMIN:9090" \
  --health-interval 1s "$IMAGE" > /dev/null
if wait_for "http://127.0.0.1:$PORT_ADMIN/healthz"; then pass "/healthz answers 200 on the published admin port"; else
  fail "/healthz answers 200 on the published admin port"; docker logs "$C" 2>&1 | tail -20; exit 1; fi
check "/readyz answers 200" test "$(http_code "http://127.0.0.1:$PORT_ADMIN/readyz")" = 200
check "the proxy's process runs as uid 10001" \
  grep -qE '^Uid:\s+10001\s' <(docker exec "$C" cat /proc/1/status)
check "an unlisted name is refused: GET http://denied.example/ -> 403" \
  test "$(http_code -x "http://127.0.0.1:$PORT_PROXY" http://denied.example/)" = 403
check "an unlisted name is refused: CONNECT denied.example:443 -> 403" \
  test "$(curl -s -p -o /dev/null -w '%{http_connect}' --max-time 5 -x "http://127.0.0.1:$PORT_PROXY" https://denied.example/)" = 403
logged() { # container pattern: the pattern in its standard output within 5 s (the log writer batches)
  for _ in $(seq 1 50); do grep -qE "$2" <(docker logs "$1" 2>&1) && return 0; sleep 0.1; done
  return 1
}
check "the decision log is on standard output (docker logs)" \
  logged "$C" '"event":"decision".*"host":"denied.example","port":443,"decision":"deny","reason":"no-match"'
check "/metrics counts the refusals" \
  grep -q 'egress_decisions_total{.*decision="deny"' <(curl -s --max-time 5 "http://127.0.0.1:$PORT_ADMIN/metrics")
health=""
for _ in $(seq 1 60); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$C")
  [ "$health" = healthy ] && break
  sleep 0.5
done
check "the HEALTHCHECK's command reports healthy (probed every 1 s here)" test "$health" = healthy
docker stop -t 40 "$C" > /dev/null
check "docker stop: drained, exit code 0" test "$(docker inspect -f '{{.State.ExitCode}}' "$C")" = 0
check "docker stop: it said it stopped" grep -q 'egress-proxy: stopped' <(docker logs "$C" 2>&1)

# ---- a configuration mounted over the shipped one; SIGHUP ---------------------------------
mkdir -p "$WORK/origin" "$WORK/conf"
head -c 300000 /dev/urandom > "$WORK/origin/file"
python3 -m http.server "$PORT_ORIGIN" --bind 127.0.0.1 --directory "$WORK/origin" > "$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
mounted_config() { # allow|deny for allowed.test
  cat <<EOF
listeners:
  - {name: explicit, mode: http-proxy, bind: "127.0.0.1:$PORT_HOST_PROXY"}
admin: {bind: "127.0.0.1:$PORT_HOST_ADMIN"}
policy:
  mode: enforce
  rules:
    - {$1: allowed.test, ports: [$PORT_ORIGIN]}
  allowDestinationCidrs: [127.0.0.0/8]
resolver:
  hosts: {allowed.test: 127.0.0.1}
decisionLog: {path: "-"}
EOF
}
mounted_config allow > "$WORK/conf/proxy.yaml"
chmod 644 "$WORK/conf/proxy.yaml"
C2=egress-image-check-mounted
CONTAINERS+=("$C2")
docker rm -f "$C2" > /dev/null 2>&1 || true
docker run -d --name "$C2" --network host -v "$WORK/conf/proxy.yaml:/etc/egress-proxy/proxy.yaml:ro" "$IMAGE" > /dev/null
if wait_for "http://127.0.0.1:$PORT_HOST_ADMIN/healthz"; then pass "starts with a configuration mounted over /etc/egress-proxy/proxy.yaml"; else
  fail "starts with a configuration mounted over /etc/egress-proxy/proxy.yaml"; docker logs "$C2" 2>&1 | tail -20; exit 1; fi
for _ in $(seq 1 50); do [ "$(http_code "http://127.0.0.1:$PORT_ORIGIN/file")" = 200 ] && break; sleep 0.1; done
check "an allowed name through absolute-form, byte for byte" \
  cmp <(curl -s --max-time 10 -x "http://127.0.0.1:$PORT_HOST_PROXY" "http://allowed.test:$PORT_ORIGIN/file") "$WORK/origin/file"
check "an allowed name through a CONNECT tunnel, byte for byte" \
  cmp <(curl -s -p --max-time 10 -x "http://127.0.0.1:$PORT_HOST_PROXY" "http://allowed.test:$PORT_ORIGIN/file") "$WORK/origin/file"
mounted_config deny > "$WORK/conf/proxy.yaml.new"
cat "$WORK/conf/proxy.yaml.new" > "$WORK/conf/proxy.yaml" # in place: the bind mount follows the inode
docker kill -s HUP "$C2" > /dev/null
check "docker kill -s HUP reloads the policy" logged "$C2" 'reloaded \(SIGHUP\)'
check "after the reload the name is refused (403)" \
  test "$(http_code -x "http://127.0.0.1:$PORT_HOST_PROXY" "http://allowed.test:$PORT_ORIGIN/file")" = 403
docker stop -t 40 "$C2" > /dev/null
check "docker stop: exit code 0" test "$(docker inspect -f '{{.State.ExitCode}}' "$C2")" = 0

if [ "$FAILED" = 0 ]; then
  say "every check passed${STAND_INS:+ (on stand-in base images: ${STAND_INS[*]})}"
else
  say "some checks FAILED (above)"
fi
exit "$FAILED"
