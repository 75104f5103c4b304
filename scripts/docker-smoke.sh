#!/usr/bin/env bash
# Builds the Docker image and tries it the way the README uses it:
#   - as a non-root user, uid 10001;
#   - over stdio: initialize, tools/list, a one-epoch training whose checkpoint lands in a named
#     volume, and a second start that reuses the compile cache in its named volume;
#   - with `accelerator: gpu` (lavapipe, the software Vulkan the image carries);
#   - over HTTP: /healthz, and a call without and with the bearer token;
#   - with a host directory bind-mounted over /checkpoints, owned by 10001 or run with --user;
#   - the CPU-only tag (`--target cpu`), with no Vulkan in it.
# It prints the build times and image sizes it measured.
#
#   scripts/docker-smoke.sh    # about 26 min here, 45 from an empty build cache
#
# It needs a running Docker engine, python3, curl, git and file. With a bridge network it
# publishes the HTTP port (`-p`); without one (dockerd --bridge=none) it uses the host's network.
#
# Where Docker Hub cannot be reached, it first makes the two base images the Dockerfile names,
# and says so: debian:bookworm-slim with debootstrap (minbase, from deb.debian.org), and
# rust:1.95-bookworm from it with rustup (from static.rust-lang.org). Both need root, and trust
# the CA certificates this machine adds to Debian's (/usr/local/share/ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-lightning-mcp:smoke}
TOOLCHAIN=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
RUST_BASE="rust:${TOOLCHAIN%.*}-bookworm"
DEBIAN_BASE=debian:bookworm-slim
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PREFIX=lightning-mcp-smoke
WORK=$(mktemp -d)
trap 'cleanup' EXIT

# Without a bridge network (dockerd --bridge=none), builds and containers use the host's.
network=()
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

cleanup() {
    docker rm -f "$PREFIX-http" >/dev/null 2>&1 || true
    docker volume rm "$PREFIX-checkpoints" "$PREFIX-cache" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# --- base images ------------------------------------------------------------------------------

# Whether `image` is here, or can be pulled.
have_or_pull() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    timeout 60 docker pull "$1" >/dev/null 2>&1
}

make_debian() {
    step "Docker Hub is out of reach: making $DEBIAN_BASE with debootstrap (minbase) from $DEBIAN_MIRROR"
    command -v debootstrap >/dev/null || fail "debootstrap is needed (apt-get install debootstrap)"
    local root="$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    # It trusts what this machine trusts beyond Debian's roots (an egress proxy's CA, say), so
    # that the builds on it fetch crates and rustup as this machine does.
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    tar -C "$root" -c . | docker import - "$DEBIAN_BASE" >/dev/null
    rm -rf "$root"
}

make_rust() {
    step "Docker Hub is out of reach: making $RUST_BASE from $DEBIAN_BASE with rustup $TOOLCHAIN"
    docker build -q "${network[@]}" -t "$RUST_BASE" - <<DOCKERFILE >/dev/null
FROM $DEBIAN_BASE
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:\$PATH
RUN curl -sSf -o /tmp/rustup-init \\
        https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init \\
    && chmod +x /tmp/rustup-init \\
    && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain $TOOLCHAIN \\
    && rm /tmp/rustup-init
DOCKERFILE
}

step "Docker engine"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"
docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}'
if ! docker network inspect bridge >/dev/null 2>&1; then
    network=(--network host)
    echo "no bridge network: builds and containers use the host's network"
fi

have_or_pull "$DEBIAN_BASE" || make_debian
have_or_pull "$RUST_BASE" || make_rust

# --- the MCP client the checks below speak through ------------------------------------------------
cat >"$WORK/mcp.py" <<'PY'
"""A minimal MCP client for the smoke test: `stdio COMMAND...` runs a session with the server
that COMMAND starts, `http URL TOKEN` posts one initialize. Exits non-zero on any surprise."""
import json, subprocess, sys, urllib.request, urllib.error

def fail(message):
    sys.exit(f"FAILED: {message}")

def stdio(command, accelerator):
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    def request(id, method, params):
        message = {"jsonrpc": "2.0", "id": id, "method": method, "params": params}
        server.stdin.write(json.dumps(message) + "\n")
        server.stdin.flush()
        while True:
            line = server.stdout.readline()
            if not line:
                fail(f"the server ended before answering {method}")
            reply = json.loads(line)  # stdout carries protocol messages only
            if reply.get("id") == id:
                return reply
    init = request(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                     "clientInfo": {"name": "docker-smoke", "version": "1"}})
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    tools = [t["name"] for t in request(2, "tools/list", {})["result"]["tools"]]
    if "lightning.train" not in tools:
        fail(f"tools/list: {tools}")
    train = {"model": {"_target_": "lightning_mcp.models.simple.SimpleClassifier"},
             "data": {"dataset": "iris"},
             "trainer": {"max_epochs": 1, "seed": 0, "accelerator": accelerator}}
    result = request(3, "tools/call", {"name": "lightning.train", "arguments": train})["result"]
    server.stdin.close()
    server.wait(timeout=60)
    out = result["structuredContent"]
    print(json.dumps({"server": init["result"]["serverInfo"]["version"], "tools": len(tools),
                      "status": out["status"], "device": out.get("trainer", {}).get("device"),
                      "checkpoint": out.get("checkpoint_path"), "error": out.get("error")}))

def http(url, token, host):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "docker-smoke", "version": "1"}}})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if host:
        headers["Host"] = host
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.status)
    except urllib.error.HTTPError as e:
        print(e.code)

if sys.argv[1] == "stdio":
    stdio(sys.argv[3:], sys.argv[2])
else:
    http(*sys.argv[2:5])
PY

# `train_over_stdio IMAGE ACCELERATOR [docker run options...]`: one session; prints its summary.
train_over_stdio() {
    local image=$1 accelerator=$2
    shift 2
    python3 "$WORK/mcp.py" stdio "$accelerator" docker run -i --rm "${network[@]}" "$@" "$image"
}

# `field JSON KEY`: a top-level field of a summary line.
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(json.dumps(v) if isinstance(v, dict) else v)' "$1" "$2"; }

# The files of a volume or directory mounted at /mnt, with their sizes and times.
listing() { docker run --rm -v "$1:/mnt" --entrypoint find "$IMAGE" /mnt -type f -printf '%p %s %T@\n' | sort; }

mib() { echo "$(( $1 / 1048576 )) MiB"; }
size_of() { mib "$(docker image inspect -f '{{.Size}}' "$1")"; }

# --- build ---------------------------------------------------------------------------------------
step "build $IMAGE (the default target: CPU and GPU)"
started=$(now)
docker build -q "${network[@]}" -t "$IMAGE" . >/dev/null
build_s=$(( $(now) - started ))
echo "built in ${build_s} s; image $(size_of "$IMAGE")"

step "the binary is stripped, and the image runs as uid 10001"
docker create --name "$PREFIX-binary" "$IMAGE" >/dev/null
docker cp "$PREFIX-binary:/usr/local/bin/lightning-mcp" "$WORK/lightning-mcp" >/dev/null
docker rm "$PREFIX-binary" >/dev/null
file "$WORK/lightning-mcp" | grep -q ", stripped" || fail "the binary is not stripped: $(file "$WORK/lightning-mcp")"
echo "binary $(mib "$(stat -c %s "$WORK/lightning-mcp")"), stripped"
uid=$(docker run --rm --entrypoint id "$IMAGE" -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid"
echo "uid $uid"

step "stdio: initialize, tools/list, a training into named volumes"
volumes=(-v "$PREFIX-checkpoints:/checkpoints" -v "$PREFIX-cache:/cache")
first=$(train_over_stdio "$IMAGE" cpu "${volumes[@]}")
echo "$first"
[ "$(field "$first" status)" = completed ] || fail "the training: $first"
listing "$PREFIX-checkpoints" | grep -q '\.safetensors ' || fail "no checkpoint in the volume"
echo "checkpoint in the volume: $(field "$first" checkpoint)"
cache_before=$(listing "$PREFIX-cache")
[ -n "$cache_before" ] || fail "nothing compiled into the cache volume"

step "stdio again: the compile cache is reused, the checkpoints kept"
second=$(train_over_stdio "$IMAGE" cpu "${volumes[@]}" 2>"$WORK/second.log")
[ "$(field "$second" status)" = completed ] || fail "the second training: $second"
[ "$(listing "$PREFIX-cache")" = "$cache_before" ] || fail "the cache was written again"
! grep -E "not using the compile cache|recompiling" "$WORK/second.log" || fail "the cache was not used"
echo "cache unchanged ($(echo "$cache_before" | wc -l) components); checkpoints: $(listing "$PREFIX-checkpoints" | grep -c '\.safetensors ')"

step "accelerator gpu (lavapipe)"
gpu=$(train_over_stdio "$IMAGE" gpu "${volumes[@]}")
echo "$gpu"
[ "$(field "$gpu" status)" = completed ] || fail "the GPU training: $gpu"
field "$gpu" device | grep -q '"wgpu"' || fail "not on wgpu: $gpu"

step "a host directory over /checkpoints"
owned="$WORK/owned" && mkdir -p "$owned"
if [ "$(id -u)" = 0 ]; then
    chown 10001 "$owned"
    out=$(train_over_stdio "$IMAGE" cpu -v "$owned:/checkpoints")
    [ "$(field "$out" status)" = completed ] || fail "owned by 10001: $out"
    echo "owned by uid 10001: $(find "$owned" -name '*.safetensors' | wc -l) checkpoint(s)"
    user=4242
    mkdir -p "$WORK/mine" && chown "$user" "$WORK/mine"
else
    user=$(id -u)
    mkdir -p "$WORK/mine"
fi
out=$(train_over_stdio "$IMAGE" cpu --user "$user" -v "$WORK/mine:/checkpoints" \
    -e LIGHTNING_MCP_CACHE_DIR=/checkpoints/.cache 2>"$WORK/user.log")
[ "$(field "$out" status)" = completed ] || fail "--user $user: $out"
! grep -q "not using the compile cache" "$WORK/user.log" || fail "--user $user: the cache was not used"
[ -n "$(ls -A "$WORK/mine/.cache")" ] || fail "--user $user: nothing in the cache"
echo "--user $user with a directory it owns: $(find "$WORK/mine" -name '*.safetensors' | wc -l) checkpoint(s), cache in .cache"

step "HTTP: /healthz, a call without and with the token, Host names"
port=${PORT:-18731}
token=smoke-$RANDOM$RANDOM
if [ ${#network[@]} -gt 0 ]; then
    publish=(--network host) listen=(--host 127.0.0.1 --port "$port")
else
    publish=(-p "127.0.0.1:$port:8000") listen=(--host 0.0.0.0)
fi
docker run -d --name "$PREFIX-http" "${publish[@]}" "$IMAGE" --http "${listen[@]}" \
    --auth-token "$token" --allowed-host lightning.example >/dev/null
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.2
done
health=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
url="http://127.0.0.1:$port/mcp"
without=$(python3 "$WORK/mcp.py" http "$url" "" "")
with=$(python3 "$WORK/mcp.py" http "$url" "$token" "")
named=$(python3 "$WORK/mcp.py" http "$url" "$token" "lightning.example:$port")
unnamed=$(python3 "$WORK/mcp.py" http "$url" "$token" "elsewhere.example:$port")
echo "/healthz $health; without the token $without, with it $with; Host lightning.example $named, elsewhere.example $unnamed"
[ "$health $without $with $named $unnamed" = "200 401 200 200 403" ] || fail "HTTP"
docker rm -f "$PREFIX-http" >/dev/null

step "the CPU-only image (--target cpu)"
started=$(now)
docker build -q "${network[@]}" --target cpu -t "$IMAGE-cpu" . >/dev/null
echo "built in $(( $(now) - started )) s (its stages cached); image $(size_of "$IMAGE-cpu")"
out=$(train_over_stdio "$IMAGE-cpu" cpu)
[ "$(field "$out" status)" = completed ] || fail "cpu image: $out"
out=$(train_over_stdio "$IMAGE-cpu" gpu)
[ "$(field "$out" status)" = failed ] || fail "cpu image, accelerator gpu: $out"
echo "trains on the CPU; accelerator gpu: $(field "$out" error)"

step "a source change rebuilds the server, not the dependencies"
copy="$WORK/source"
git ls-files -z | tar --null -T - -cf - | (mkdir -p "$copy" && tar -C "$copy" -xf -)
echo "// a change" >>"$copy/host/src/main.rs"
started=$(now)
docker build -q "${network[@]}" -t "$IMAGE-changed" "$copy" >/dev/null
echo "rebuilt in $(( $(now) - started )) s (the build at the start of this run: ${build_s} s)"
docker rmi "$IMAGE-changed" >/dev/null

step "image layers (the default image)"
docker history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110 | head -12

step "done: every check passed"
