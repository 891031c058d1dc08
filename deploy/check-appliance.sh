#!/usr/bin/env bash
# Stands up a VM appliance from deploy/cloud-init.yaml the way the Azure scale set does - a
# Debian bookworm system booted with cloud-init's user data - and checks what it promises:
# cloud-init finishes without an error (packages, the egress-proxy user, the files, the jar
# fetched and its SHA-256 checked, the configuration validated, the unit enabled and started);
# the proxy serves on the appliance's ports (403 for an unlisted name, /readyz, an allowed
# name's decision via /check); the decision log in /var/log/egress-proxy; the unit's hardening
# in effect on the running process (its user, CAP_NET_BIND_SERVICE alone, no new privileges, a
# read-only file system but for its state and log directories); journald; `systemctl reload`
# reloading; a broken configuration failing with status 2 and not restarted; a crash restarted;
# `systemctl stop` draining to a clean exit.
#
#   deploy/check-appliance.sh [--jar FILE] [--keep]     (as root, on Linux; ~3 min on 2 cores)
#
# The "VM" is a container with systemd as PID 1 and cloud-init's NoCloud data source, on the
# host's network (cloud-init's apt-get reaches Debian as the host does), so the appliance's
# ports (3128, 8443, 8080, 9090 on every address) must be free here; transparent listeners
# (@@TRANSPARENT@@ true) are not turned on, which would put TPROXY rules in the host's network
# namespace (TransparentNetnsTest checks that path in namespaces of its own). The root file
# system comes from debootstrap with the packages the cloud-config lists, systemd and cloud-init.
# The jar: --jar FILE, else built from this working tree (in a copy, so as not to touch target/).
# It is served on 127.0.0.1 to the "VM" as @@JAR_URL@@.
# Engine: as deploy/check-image.sh (a running one, or one of its own, removed afterwards).
# Exit status: 0 when every check passed, 1 when one failed (it says which), 2 when it could not
# run (not root, ports in use, no engine, no Debian mirror).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=check-appliance
IMAGE=egress-appliance:check
C=egress-appliance-check
KEEP=0 JAR=""
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=1 ;;
    --jar) JAR=$(realpath "$2"); shift ;;
    *) echo "usage: deploy/check-appliance.sh [--jar FILE] [--keep]" >&2; exit 2 ;;
  esac
  shift
done
PORT_JAR=31300
WORK=$(mktemp -d /var/tmp/egress-appliance-check.XXXXXX)
SERVER_PID="" STARTED=0
# shellcheck source=deploy/check-lib.sh
. "$REPO/deploy/check-lib.sh"

cleanup() {
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  if [ "$KEEP" = 1 ]; then
    [ "$STARTED" = 1 ] && say "kept: container $C (docker exec -it $C bash), image $IMAGE"
  else
    docker rm -f "$C" > /dev/null 2>&1
    docker rmi -f "$IMAGE" > /dev/null 2>&1
  fi
  engine_down
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root (it starts a system container and uses debootstrap)"
for port in 3128 8443 8080 9090 "$PORT_JAR"; do
  [ -z "$(ss -Hltn "sport = :$port")" ] || die "port $port is in use here; the appliance (on the host's network) needs it"
done
in_vm() { docker exec "$C" "$@"; }
prop() { in_vm systemctl show -p "$1" --value egress-proxy; } # (several at once come in systemd's order)

# ---- the jar ------------------------------------------------------------------------------
mkdir -p "$WORK/www"
if [ -n "$JAR" ]; then
  cp "$JAR" "$WORK/www/egress-proxy.jar"
else
  say "building the jar from $REPO (a copy of its sources)"
  mkdir -p "$WORK/src/proxy" "$WORK/src/benchmarks"
  cp "$REPO/pom.xml" "$WORK/src/"
  cp "$REPO/proxy/pom.xml" "$WORK/src/proxy/"
  cp "$REPO/benchmarks/pom.xml" "$WORK/src/benchmarks/"
  cp -r "$REPO/proxy/src" "$WORK/src/proxy/"
  cp -r "$REPO/config" "$WORK/src/"
  mvn -B -q -f "$WORK/src/pom.xml" -pl proxy -am package -DskipTests > "$WORK/mvn.log" 2>&1 \
    || { tail -20 "$WORK/mvn.log"; die "the jar did not build"; }
  cp "$WORK/src/proxy/target/egress-proxy.jar" "$WORK/www/"
  rm -rf "$WORK/src"
fi
SHA=$(sha256sum "$WORK/www/egress-proxy.jar" | cut -d' ' -f1)
python3 -m http.server "$PORT_JAR" --bind 127.0.0.1 --directory "$WORK/www" > "$WORK/http.log" 2>&1 &
SERVER_PID=$!

# ---- the user data, as main.bicep fills it ------------------------------------------------
mkdir -p "$WORK/seed"
sed -e "s|@@JAR_URL@@|http://127.0.0.1:$PORT_JAR/egress-proxy.jar|" -e "s|@@JAR_SHA256@@|$SHA|" \
  -e 's|@@LOCATION@@|eastus|' -e 's|@@CATALOGS@@|aks-global, nova-platform|' \
  -e 's|@@TRANSPARENT@@|false|' -e 's|@@CLIENT_CIDRS@@|192.0.2.0/24|' \
  "$REPO/deploy/cloud-init.yaml" > "$WORK/seed/user-data"
grep -q '@@' "$WORK/seed/user-data" && die "a placeholder this check does not know: $(grep -o '@@[A-Z_]*@@' "$WORK/seed/user-data" | sort -u | tr '\n' ' ')"
printf 'instance-id: egress-appliance-check\nlocal-hostname: egress-appliance\n' > "$WORK/seed/meta-data"
# Only the NoCloud seed above, and no network configuration (the container shares the host's).
printf 'datasource_list: [NoCloud]\nnetwork: {config: disabled}\n' > "$WORK/99-check.cfg"

# ---- the "VM" -------------------------------------------------------------------------------
# (The "VM" is on the host's network: this engine hands out no address on the default bridge,
# so it can run beside check-image.sh's own engine, which shares that bridge. --bridge=none
# would not do: dockerd then deletes the bridge the other engine uses.)
engine_up
packages=$(awk '/^packages:/ {on = 1; next} on && /^  - / {print $2; next} on && /^[^ #]/ {on = 0}' \
  "$REPO/deploy/cloud-init.yaml" | paste -sd, -)
[ -n "$packages" ] || die "no packages: list found in deploy/cloud-init.yaml"
say "a Debian bookworm system with systemd, cloud-init and the cloud-config's packages ($packages)"
# locales (en_US.UTF-8, cloud-init's default) and sudo as a Debian cloud image has them:
# cloud-init's locale and user modules use them
debian_image "$IMAGE" "systemd,systemd-sysv,sudo,$packages" "cloud-init locales" \
  "sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen && locale-gen"
docker run -d --name "$C" --network host --cap-add SYS_ADMIN --cap-add NET_ADMIN \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  -v "$WORK/seed:/var/lib/cloud/seed/nocloud:ro" -v "$WORK/99-check.cfg:/etc/cloud/cloud.cfg.d/99-check.cfg:ro" \
  "$IMAGE" /lib/systemd/systemd > /dev/null
STARTED=1
say "booted; waiting for cloud-init"
# cloud-init's final stage writes boot-finished last (status --wait returns at the first error)
for _ in $(seq 1 300); do in_vm test -e /var/lib/cloud/instance/boot-finished && break; sleep 1; done
check "cloud-init finished without an error" \
  bash -c "docker exec $C cloud-init status --long; docker exec $C cloud-init status | grep -qx 'status: done'"
[ "$FAILED" = 0 ] || { in_vm tail -30 /var/log/cloud-init-output.log; exit 1; }
check "the jar fetched and checked" \
  bash -c "docker exec $C sha256sum /opt/egress-proxy/egress-proxy.jar | grep -q '^$SHA '"
check "egress-proxy.service enabled and running" \
  bash -c "docker exec $C systemctl is-enabled egress-proxy && docker exec $C systemctl is-active egress-proxy"
check "no TPROXY with transparent listeners off" \
  bash -c "! docker exec $C systemctl is-enabled egress-proxy-tproxy && ! docker exec $C test -e /etc/systemd/system/egress-proxy.service.d/tproxy.conf"

# ---- serving ----------------------------------------------------------------------------------
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
for _ in $(seq 1 60); do [ "$(http_code http://127.0.0.1:9090/readyz)" = 200 ] && break; sleep 0.5; done
check "/readyz answers 200 on port 9090" test "$(http_code http://127.0.0.1:9090/readyz)" = 200
check "an unlisted name is refused on port 3128 (403)" \
  test "$(http_code -x http://127.0.0.1:3128 http://denied.example/)" = 403
check "the configured catalogs allow mcr.microsoft.com:443 (/check)" \
  grep -q '^ALLOW' <(curl -s --max-time 5 'http://127.0.0.1:9090/check?host=mcr.microsoft.com&port=443')
logged() { # pattern: in the decision log file within 5 s (the writer batches)
  for _ in $(seq 1 50); do in_vm grep -qE "$1" /var/log/egress-proxy/decisions.jsonl 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
check "the refusal in /var/log/egress-proxy/decisions.jsonl" \
  logged '"host":"denied.example","port":80,"decision":"deny","reason":"no-match"'
check "the log file is the service user's, not world-readable" \
  test "$(in_vm stat -c '%U %a' /var/log/egress-proxy/decisions.jsonl)" = "egress-proxy 640"
check "journald has the proxy's own lines" grep -q 'egress-proxy: ready' <(in_vm journalctl -u egress-proxy --no-pager)

# ---- the unit's hardening, on the running process ----------------------------------------------
pid=$(prop MainPID)
check "runs as the egress-proxy user" test "$(in_vm stat -c %U "/proc/$pid")" = egress-proxy
check "CAP_NET_BIND_SERVICE and nothing else (effective and bounding)" \
  test "$(in_vm grep -E '^Cap(Eff|Bnd):' "/proc/$pid/status" | awk '{print $2}' | sort -u)" = 0000000000000400
check "no new privileges" grep -qE '^NoNewPrivs:\s+1' <(in_vm cat "/proc/$pid/status")
check "the file system read-only to it, but its state and log directories" bash -c "
  docker exec $C awk '\$5 == \"/\" {print \$6}' /proc/$pid/mountinfo | grep -q '^ro' &&
  docker exec $C awk '\$5 == \"/var/log/egress-proxy\" {print \$6}' /proc/$pid/mountinfo | grep -q '^rw' &&
  docker exec $C awk '\$5 == \"/var/lib/egress-proxy\" {print \$6}' /proc/$pid/mountinfo | grep -q '^rw'"

# ---- lifecycle ---------------------------------------------------------------------------------
in_vm systemctl reload egress-proxy
reloaded() { for _ in $(seq 1 50); do in_vm journalctl -u egress-proxy --no-pager | grep -q 'reloaded (SIGHUP)' && return 0; sleep 0.1; done; return 1; }
check "systemctl reload reloads the policy (SIGHUP)" reloaded
in_vm cp /etc/egress-proxy/proxy.yaml /etc/egress-proxy/proxy.yaml.good
in_vm sh -c 'printf "listeners:\n  - {name: x, mode: bogus, bind: 0.0.0.0:3128}\n" > /etc/egress-proxy/proxy.yaml'
in_vm systemctl restart egress-proxy > /dev/null 2>&1 || true
sleep 5 # more than RestartSec: a restart would have happened
check "a broken configuration: failed with status 2, not restarted" \
  test "$(prop ActiveState) $(prop ExecMainStatus) $(prop NRestarts)" = "failed 2 0"
check "a broken configuration: the error, with its line, in the journal" \
  grep -q 'proxy.yaml:2: listeners\[0\].mode' <(in_vm journalctl -u egress-proxy --no-pager)
in_vm mv /etc/egress-proxy/proxy.yaml.good /etc/egress-proxy/proxy.yaml
in_vm systemctl reset-failed egress-proxy
in_vm systemctl start egress-proxy
pid=$(prop MainPID)
in_vm kill -9 "$pid"
restarted() { for _ in $(seq 1 50); do
  [ "$(prop ActiveState) $(prop NRestarts)" = "active 1" ] && return 0; sleep 0.2; done; return 1; }
check "a crash (SIGKILL) is restarted" restarted
for _ in $(seq 1 60); do [ "$(http_code http://127.0.0.1:9090/readyz)" = 200 ] && break; sleep 0.5; done
check "serving again after the restart" test "$(http_code -x http://127.0.0.1:3128 http://denied.example/)" = 403
in_vm systemctl stop egress-proxy
check "systemctl stop: drained, exit status 0" \
  test "$(prop Result) $(prop ExecMainStatus)" = "success 0"

if [ "$FAILED" = 0 ]; then say "every check passed"; else say "some checks FAILED (above)"; fi
exit "$FAILED"
