#!/usr/bin/env bash
# CI image step: build the connector image from ./Dockerfile (unchanged) and prove it works as users run
# it: spec, check (good and bad key), discover, read (full, then incremental with the emitted state)
# inside the container, against the SendGrid emulator on the host (--network host), with config and
# catalog mounted read-only at /secrets. integration_tests/image_check.py asserts on the protocol messages.
#
# Every trick this machine needs lives here, never in the Dockerfile:
# - no Docker daemon: podman (as root), with its own storage under $WORK, removed at the end;
# - no registry: a stand-in for python:3.11-slim, debootstrapped from the Debian mirror and imported
#   under that name, so `FROM python:3.11-slim` builds with --pull=never;
# - HTTPS goes through a TLS-intercepting proxy: the host's extra CA certificates go into the stand-in
#   base (and PIP_CERT points at its bundle), so pip inside the build reaches PyPI;
# - ulimits and the runc runtime in a private containers.conf (CONTAINERS_CONF).
#
# Usage: .ci/image.sh            (root; installs podman and debootstrap with apt-get if missing)
# Env:   IMAGE (default source-sendgrid/source-sendgrid:dev), KEEP_IMAGE_STORAGE=1 to keep $WORK for a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
IMAGE="${IMAGE:-source-sendgrid/source-sendgrid:dev}"
BASE="docker.io/library/python:3.11-slim"
WORK="${IMAGE_WORK_DIR:-/var/tmp/source-sendgrid-image}"
started=$SECONDS

say() { echo "== image: $*" >&2; }
fail() {
  echo "" >&2
  echo "IMAGE STEP FAILED: $*" >&2
  exit 1
}
elapsed() { echo "$(( SECONDS - $1 ))s"; }

[ "$(id -u)" = 0 ] || fail "run as root (podman builds as root here, and apt-get installs its tools)."
[ -f Dockerfile ] || fail "no Dockerfile in $REPO."

# --- tools -------------------------------------------------------------------------------------------
tools_started=$SECONDS
need=()
for tool in podman debootstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  say "installing podman, runc, debootstrap (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed."
  apt-get install -y -qq --no-install-recommends \
    podman buildah runc debootstrap fuse-overlayfs slirp4netns uidmap containernetworking-plugins \
    iptables golang-github-containernetworking-plugin-dnsname catatonit conmon >/dev/null \
    || fail "apt-get install of podman and debootstrap failed."
fi
say "tools ready in $(elapsed "$tools_started"): $(podman --version), $(runc --version | head -1)"

# --- private podman configuration and storage --------------------------------------------------------
mkdir -p "$WORK"
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN=(podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay)

cleanup() {
  local status=$?
  if [ "${KEEP_IMAGE_STORAGE:-0}" != 1 ]; then
    "${PODMAN[@]}" system reset --force >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

# --- base image: the real one if this engine already has it, else a stand-in -----------------------
base_started=$SECONDS
if "${PODMAN[@]}" image exists "$BASE"; then
  say "base $BASE already present"
else
  say "no registry here: building a stand-in for $BASE (Debian bookworm minbase + python3.11)"
  rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
           | grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap of bookworm from $mirror failed."; }
  # The proxy's CA certificates, before ca-certificates builds the bundle.
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" /bin/sh -c '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip python-is-python3 ca-certificates &&
    apt-get clean && rm -rf /var/lib/apt/lists/* &&
    rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED' >"$WORK/chroot.log" 2>&1 \
    || { tail -20 "$WORK/chroot.log" >&2; fail "installing python3 into the stand-in base failed."; }
  tar -C "$rootfs" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null || fail "podman import of the stand-in base failed."
  rm -rf "$rootfs"
fi
base_seconds=$(( SECONDS - base_started ))
say "base ready in ${base_seconds}s"

# --- the connector image, from the Dockerfile as it is -----------------------------------------------
build_started=$SECONDS
say "building $IMAGE from Dockerfile"
"${PODMAN[@]}" build --pull=never --network host -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; fail "podman build of the Dockerfile failed (log above)."; }
build_seconds=$(( SECONDS - build_started ))
size_bytes=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_bytes=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE")
labels=$("${PODMAN[@]}" image inspect --format '{{index .Labels "io.airbyte.name"}}:{{index .Labels "io.airbyte.version"}}' "$IMAGE")
user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
say "built $IMAGE in ${build_seconds}s (labels $labels, user $user)"
say "image size: $(( size_bytes / 1000000 )) MB (base $(( base_bytes / 1000000 )) MB, connector layers $(( (size_bytes - base_bytes) / 1000000 )) MB)"

# --- run it as users do, and check the protocol messages ---------------------------------------------
run_started=$SECONDS
source bin/_venv 2>"$WORK/venv.log" || { tail -20 "$WORK/venv.log" >&2; fail "setting up .venv for the checker failed."; }
"$VENV/bin/python" -m integration_tests.image_check --image "$IMAGE" --engine "${PODMAN[*]}" \
  || fail "the image did not behave as the protocol requires (see the checker's output above)."
run_seconds=$(( SECONDS - run_started ))

say "summary: base ${base_seconds}s, build ${build_seconds}s, container checks ${run_seconds}s, whole step $(elapsed "$started");" \
    "image $(( size_bytes / 1000000 )) MB"
