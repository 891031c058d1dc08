# shellcheck shell=bash
# Shared by deploy/check-image.sh and deploy/check-appliance.sh (sourced, not run): reporting,
# a Docker engine when none is running, and Debian root file systems made with debootstrap.
# The caller sets NAME (for messages), WORK (a temporary directory of its own) and KEEP (1: leave
# what it made), and calls engine_down from its EXIT trap.

# shellcheck disable=SC2034 # FAILED: the callers' exit status
ENGINE_PID="" FAILED=0

say() { echo "[$(date +%T)] $*"; }
die() { echo "$NAME: $*" >&2; exit 2; }
pass() { say "ok   $1"; }
fail() { say "FAIL $1"; FAILED=1; }
check() { # description command...: passes when the command succeeds
  local what=$1; shift
  if "$@" > "$WORK/last.out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$WORK/last.out" | tail -20; fi
}
apt_install() { # packages...: from Debian, when this machine lacks them
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" > "$WORK/apt.log" 2>&1 \
    || { tail -5 "$WORK/apt.log"; die "could not install $*"; }
}

# A running Docker engine if `docker info` answers; otherwise one of its own (Debian's docker.io,
# installed if missing) with its state under $WORK/engine.
engine_up() {
  if docker info > /dev/null 2>&1; then
    say "using the running Docker engine ($(docker version -f '{{.Server.Version}}'))"
    return
  fi
  command -v dockerd > /dev/null || { say "no Docker engine: installing Debian's docker.io"; apt_install docker.io; }
  mkdir -p "$WORK/engine"
  export DOCKER_HOST="unix://$WORK/engine/docker.sock"
  # No iptables rules of its own (the host's firewall is not ours to change): published ports
  # go through docker-proxy, which is all the checks use.
  dockerd --data-root "$WORK/engine/root" --exec-root "$WORK/engine/exec" \
    --pidfile "$WORK/engine/dockerd.pid" -H "$DOCKER_HOST" --iptables=false \
    > "$WORK/engine/dockerd.log" 2>&1 &
  ENGINE_PID=$!
  for _ in $(seq 1 60); do docker info > /dev/null 2>&1 && break; sleep 0.5; done
  docker info > /dev/null 2>&1 || { tail -5 "$WORK/engine/dockerd.log"; die "the Docker engine did not start"; }
  say "started a Docker engine of its own ($(docker info -f '{{.Driver}}') storage, $DOCKER_HOST)"
}

# Stops the engine engine_up started, if it did, and removes its state (with $WORK).
engine_down() {
  if [ "$KEEP" = 1 ]; then
    say "kept: work directory $WORK${ENGINE_PID:+, engine DOCKER_HOST=$DOCKER_HOST (pid $ENGINE_PID)}"
    return
  fi
  if [ -n "$ENGINE_PID" ]; then
    kill "$ENGINE_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.2; done
    # what the engine left mounted (its network namespace, layers): deepest first
    grep -F " $WORK/engine" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount -l
  fi
  rm -rf "$WORK"
}

debian_mirror() {
  local m
  m=$(grep -hoE '^URIs: *http[^ ]*/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//')
  echo "${m:-http://deb.debian.org/debian}"
}

# image packages [more [setup]]: a Debian bookworm image with those packages (comma-separated),
# imported into the engine as image; more (space-separated) are installed afterwards with apt-get
# in the root file system, and then the shell command setup is run there (debian_add).
debian_image() {
  local root="$WORK/rootfs-${1//[:\/]/-}"
  debian_root "$root" "$2"
  [ -n "${3:-}" ] && debian_add "$root" "$3" "${4:-}"
  debian_import "$root" "$1"
}

# root packages: a Debian bookworm root file system in the directory root, made by debootstrap
# (minbase) with those packages (comma-separated).
debian_root() {
  local root=$1 log="$WORK/debootstrap-${1##*/}.log"
  command -v debootstrap > /dev/null || apt_install debootstrap
  debootstrap --variant=minbase --include="$2" bookworm "$root" "$(debian_mirror)" > "$log" 2>&1 \
    || { tail -5 "$log"; die "debootstrap failed for $root"; }
}

# root packages [setup]: those packages (space-separated) installed with apt-get in the root file
# system (with /proc, /sys and /dev: cloud-init's Python packages do not configure inside
# debootstrap), then the shell command setup run there. Adding to a copy of a root is much
# cheaper than a debootstrap of its own (check-image.sh's two stand-ins share one).
debian_add() {
  local root=$1 log="$WORK/debootstrap-${1##*/}.log" m ok=0
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  for m in proc sys dev; do mount --bind "/$m" "$root/$m"; done
  # shellcheck disable=SC2086 # a list of packages
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $2 \
    >> "$log" 2>&1 && ok=1
  [ "$ok" = 1 ] && [ -n "${3:-}" ] && { chroot "$root" sh -c "$3" >> "$log" 2>&1 || ok=0; }
  for m in dev sys proc; do umount -l "$root/$m"; done
  [ "$ok" = 1 ] || { tail -5 "$log"; die "apt-get install $2 (or the set-up after it) failed in $root"; }
  chroot "$root" apt-get clean
}

# root image: the root file system imported into the engine as image, and removed. Java in it
# trusts the host's own CA certificates (/usr/local/share/ca-certificates), so that it reaches
# Maven Central from behind a TLS-inspecting egress as this machine does.
debian_import() {
  local root=$1 cacerts="$1/etc/ssl/certs/java/cacerts" crt
  if [ -f "$cacerts" ]; then
    for crt in /usr/local/share/ca-certificates/*.crt; do
      [ -f "$crt" ] || continue
      keytool -importcert -noprompt -keystore "$cacerts" -storepass changeit \
        -alias "host-$(basename "$crt" .crt)" -file "$crt" > /dev/null 2>&1 || true
    done
  fi
  tar -C "$root" -c . | docker import --change 'LABEL org.egressproxy.check=true' - "$2" > /dev/null
  rm -rf "$root"
}
