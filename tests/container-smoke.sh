#!/usr/bin/env bash
# Container smoke test: builds Dockerfile.generator with podman on this machine and runs one whole
# generation inside the image, with genrun as PID 1 and the real Claude Code CLI talking to the Messages
# API stand-in (tests/testkit's `messages-standin`, on the host), artifacts to a mounted directory; then
# once more with the artifacts stored to the S3 test server (tests/testkit's `s3-testserver`, on the host).
#
# Too slow for every CI run: run it whenever Dockerfile.generator changes. Needs root, podman, runc and
# debootstrap (installed with apt-get when missing) and the Debian, npm and crates.io registries.
#
# Base images cannot be pulled here, so the script makes them and tags them with the names the Dockerfile
# uses: a debootstrap'ed Debian bookworm rootfs (RUNTIME_IMAGE), and the same plus gcc and the host's Rust
# toolchain (RUST_IMAGE). If the host trusts extra CA certificates (a TLS-intercepting egress proxy), they
# go into these local base images only, so apt, npm and cargo inside the build reach the registries.
# Every container runs with runc, small ulimits and a cgroup parent inside the memory cgroup this script
# runs in, so nothing escapes it. Everything the script creates is removed when it exits, except two caches
# kept on purpose: the rootfs tarballs (GENRUN_SMOKE_CACHE) and buildah's cargo-registry cache mount
# (/var/tmp/buildah-cache).
#
# Environment:
#   GENRUN_SMOKE_CACHE  where debootstrap'ed rootfs tarballs are kept between runs (/var/tmp/genrun-smoke)
#   DEBIAN_MIRROR       debootstrap mirror (http://deb.debian.org/debian)
#   STANDIN_BIN         a prebuilt messages-standin (default: built with cargo, with s3-testserver)
#   S3_BIN              a prebuilt s3-testserver (default: next to STANDIN_BIN)
#   KEEP_IMAGE=1        keep the built image (tagged localhost/genrun-generator:smoke)
#   REUSE_IMAGE=1       skip the build and run the kept image (iterating on the run part only)
#   GENRUN_BIN_OVERRIDE a host genrun binary to mount over the image's (diagnosis only; not a pass)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE="$ROOT/Dockerfile.generator"
CACHE=${GENRUN_SMOKE_CACHE:-/var/tmp/genrun-smoke}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
IMAGE=localhost/genrun-generator:smoke
REQUEST_ID=smoke-$$
CONTAINER=genrun-smoke-$$
WORK=$(mktemp -d /tmp/genrun-smoke.XXXXXX)
STARTED=$(date +%s)

say() { printf '[smoke %4ss] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and rootful podman)"

# --- tools ------------------------------------------------------------------------------------------
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >/dev/null
fi

# --- the cgroup every container goes under ----------------------------------------------------------
# cgroup v1: the memory controller's line; v2: the unified "0::" line.
own_cgroup=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
[ -n "$own_cgroup" ] || own_cgroup=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
[ -n "$own_cgroup" ] || fail "cannot find this process's cgroup in /proc/self/cgroup"
CGROUP_PARENT="${own_cgroup%/}/podman"
CONTAINER_FLAGS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
    --cgroups=no-conmon "--cgroup-parent=$CGROUP_PARENT")
# `podman build` runs its RUN steps in containers too: the same limits, as far as build accepts them.
BUILD_FLAGS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
    "--cgroup-parent=$CGROUP_PARENT")
say "cgroup parent $CGROUP_PARENT"

# --- clean-up ---------------------------------------------------------------------------------------
created_images=()
standin_pid=
s3_pid=
reused=
images_before=$(podman images -aq --no-trunc | sort -u)
containers_before=$(podman ps -a --external -q --no-trunc | sort -u)
cleanup() {
    local rc=$?
    set +e
    [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null && wait "$standin_pid" 2>/dev/null
    [ -n "$s3_pid" ] && kill "$s3_pid" 2>/dev/null && wait "$s3_pid" 2>/dev/null
    podman rm -f "$CONTAINER-s3" >/dev/null 2>&1
    podman rm -f "$CONTAINER" >/dev/null 2>&1
    # Containers (build containers included) this run created and left behind.
    comm -13 <(echo "$containers_before") <(podman ps -a --external -q --no-trunc | sort -u) \
        | xargs -r podman rm -f >/dev/null 2>&1
    [ "${KEEP_IMAGE:-}" = 1 ] || [ -n "$reused" ] || created_images+=("$IMAGE")
    for image in "${created_images[@]}"; do podman rmi -f "$image" >/dev/null 2>&1; done
    # Intermediate (stage) images this run's build left behind.
    keep=$([ "${KEEP_IMAGE:-}" = 1 ] && podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null)
    comm -13 <(echo "$images_before") <(podman images -aq --no-trunc | sort -u) | while read -r id; do
        [ -n "$keep" ] && [ "${id#sha256:}" = "${keep#sha256:}" ] && continue
        podman rmi -f "$id" >/dev/null 2>&1
    done
    rm -rf "$WORK"
    say "cleaned up (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- base images and the image (a function: REUSE_IMAGE=1 skips it) -----------------------------------
build_image() {
    # --- base images ------------------------------------------------------------------------------------
    arg_default() { sed -n "s/^ARG $1=//p" "$DOCKERFILE" | head -1; }
    RUST_IMAGE=$(arg_default RUST_IMAGE)
    RUNTIME_IMAGE=$(arg_default RUNTIME_IMAGE)
    [ -n "$RUST_IMAGE" ] && [ -n "$RUNTIME_IMAGE" ] || fail "no base image ARGs in $DOCKERFILE"

    # The host's extra CA certificates: local ones, and bundle members that ca-certificates does not manage.
    host_extra_cas() {
        find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null
        find /etc/ssl/certs -maxdepth 1 -name '*.pem' -type f 2>/dev/null
    }

    # rootfs_tar NAME INCLUDES: a cached tarball of a minimal Debian rootfs with INCLUDES (comma-separated).
    rootfs_tar() {
        local name=$1 include=$2 tarball="$CACHE/$1.tar"
        if [ ! -s "$tarball" ]; then
            say "debootstrap $SUITE ($name${include:+: $include})"
            mkdir -p "$CACHE"
            local dir="$WORK/rootfs-$name"
            debootstrap --variant=minbase ${include:+--include="$include"} "$SUITE" "$dir" "$MIRROR" \
                >"$WORK/debootstrap-$name.log" 2>&1 || { tail -20 "$WORK/debootstrap-$name.log"; fail "debootstrap"; }
            local n=0
            while read -r ca; do
                n=$((n + 1))
                install -D -m 0644 "$ca" "$dir/usr/local/share/ca-certificates/smoke-host-$n.crt"
            done < <(host_extra_cas)
            if [ -x "$dir/usr/sbin/update-ca-certificates" ]; then
                chroot "$dir" update-ca-certificates >/dev/null 2>&1 || true
            fi
            rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
            tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
            mv "$tarball.tmp" "$tarball"
            rm -rf "$dir"
        fi
        echo "$tarball"
    }

    BASE_ENV=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'
        --change 'ENV npm_config_cafile=/etc/ssl/certs/ca-certificates.crt'
        --change 'CMD ["bash"]')

    if podman image exists "$RUNTIME_IMAGE"; then
        say "using existing $RUNTIME_IMAGE"
    else
        tarball=$(rootfs_tar "$SUITE-minbase" "")
        say "import $RUNTIME_IMAGE"
        podman import -q "${BASE_ENV[@]}" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            "$tarball" "$RUNTIME_IMAGE" >/dev/null
        created_images+=("$RUNTIME_IMAGE")
    fi

    if podman image exists "$RUST_IMAGE"; then
        say "using existing $RUST_IMAGE"
    else
        # The toolchain named by the image tag (rust:1.95-... -> 1.95*), copied from the host's rustup.
        rust_version=$(echo "${RUST_IMAGE##*:}" | sed 's/-.*//')
        rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
        toolchain=$(ls -d "$rustup_home/toolchains/$rust_version"*-x86_64-unknown-linux-gnu 2>/dev/null | sort | tail -1)
        [ -n "$toolchain" ] || fail "no host toolchain $rust_version* in $rustup_home/toolchains"
        tc_name=$(basename "$toolchain")
        tarball=$(rootfs_tar "$SUITE-rust-base" "ca-certificates,gcc,libc6-dev")
        say "import $RUST_IMAGE (host toolchain $tc_name)"
        # Like the official image: toolchain under /usr/local/rustup, tools on PATH from /usr/local/cargo/bin.
        stage="$WORK/rust-extra"
        mkdir -p "$stage/usr/local/cargo/bin" "$stage/usr/local/rustup/toolchains"
        for tool in "$toolchain"/bin/*; do
            ln -s "/usr/local/rustup/toolchains/$tc_name/bin/$(basename "$tool")" "$stage/usr/local/cargo/bin/"
        done
        cp "$tarball" "$WORK/rust.tar"
        # Only paths the base lacks: the importer refuses duplicate entries.
        tar -rf "$WORK/rust.tar" -C "$stage" ./usr/local/cargo ./usr/local/rustup
        # The toolchain directory may be a symlink (e.g. 1.95.0-... -> stable-...): archive what it points to.
        real=$(readlink -f "$toolchain")
        tar -rf "$WORK/rust.tar" -C "$(dirname "$real")" --exclude="$(basename "$real")/share/doc" \
            --transform "s,^$(basename "$real"),./usr/local/rustup/toolchains/$tc_name," "$(basename "$real")"
        podman import -q "${BASE_ENV[@]}" \
            --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
            "$WORK/rust.tar" "$RUST_IMAGE" >/dev/null
        rm -f "$WORK/rust.tar"
        created_images+=("$RUST_IMAGE")
    fi

    # --- the image --------------------------------------------------------------------------------------
    say "podman build -f Dockerfile.generator (log: build.log)"
    build_started=$(date +%s)
    # The build reaches the registries through the host's network (there is no other route here).
    if ! podman build "${BUILD_FLAGS[@]}" --network host --label "genrun-smoke=$$" \
        -f "$DOCKERFILE" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1; then
        tail -40 "$WORK/build.log" >&2
        fail "podman build"
    fi
    say "built $IMAGE in $(($(date +%s) - build_started))s, $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
    grep -E '^(STEP|COMMIT)' "$WORK/build.log" | sed 's/^/  /' >&2 || true
}

reused=
if [ "${REUSE_IMAGE:-}" = 1 ] && podman image exists "$IMAGE"; then
    say "reusing $IMAGE (REUSE_IMAGE=1)"
    reused=1
else
    build_image
fi

# Image facts the Dockerfile promises.
config=$(podman image inspect "$IMAGE" --format '{{json .Config}}')
python3 - "$config" <<'EOF' || fail "image config"
import json, sys
c = json.loads(sys.argv[1])
assert c["Entrypoint"] == ["/usr/local/bin/genrun"], c["Entrypoint"]
assert c.get("Cmd") == ["run"], c.get("Cmd")
assert c.get("StopSignal") == "SIGTERM", c.get("StopSignal")
env = dict(e.split("=", 1) for e in c["Env"])
for k, v in {"GENRUN_WORKSPACE": "/workspace/app", "GENRUN_LOG_FORMAT": "json", "GENRUN_AGENT_USER": "agent"}.items():
    assert env.get(k) == v, (k, env.get(k))
assert not any(k.startswith(("ANTHROPIC_", "AWS_")) for k in env), "a credential variable in the image"
print("  image config: entrypoint, cmd, stopsignal, GENRUN_* defaults ok", file=sys.stderr)
EOF
podman run --rm "${CONTAINER_FLAGS[@]}" --entrypoint /bin/sh "$IMAGE" -c \
    'set -e; test "$(id -u agent)" = 1000; test -d /home/agent; test "$(stat -c %U /workspace)" = agent;
     claude --version; /usr/local/bin/genrun --version; node --version' >"$WORK/facts.txt" 2>&1 \
    || { cat "$WORK/facts.txt" >&2; fail "image contents"; }
say "image contents: agent uid 1000, /workspace owned by agent, $(tr '\n' ' ' <"$WORK/facts.txt")"

# --- the stand-in -----------------------------------------------------------------------------------
standin=${STANDIN_BIN:-}
if [ -z "$standin" ]; then
    say "cargo build messages-standin, s3-testserver"
    (cd "$ROOT" && cargo build -q -p genrun-testkit --bin messages-standin --bin s3-testserver)
    standin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/messages-standin"
fi
"$standin" generation >"$WORK/standin.env" 2>"$WORK/standin.log" &
standin_pid=$!
for _ in $(seq 100); do grep -q '^CLAUDE_CODE_MAX_RETRIES=' "$WORK/standin.env" 2>/dev/null && break; sleep 0.1; done
grep -q '^ANTHROPIC_BASE_URL=' "$WORK/standin.env" || fail "the stand-in did not start"
say "stand-in: $(head -1 "$WORK/standin.env")"

# --- a whole generation in the container ------------------------------------------------------------
mkdir -p "$WORK/out"
env_flags=()
while IFS= read -r line; do env_flags+=(-e "$line"); done <"$WORK/standin.env"
say "podman run (genrun run, request $REQUEST_ID)"
override=()
if [ -n "${GENRUN_BIN_OVERRIDE:-}" ]; then
    say "diagnostic run: $GENRUN_BIN_OVERRIDE mounted over the image's genrun"
    override=(-v "$GENRUN_BIN_OVERRIDE:/usr/local/bin/genrun:ro")
fi
podman run -d --name "$CONTAINER" "${CONTAINER_FLAGS[@]}" --network host \
    -v "$WORK/out:/output" "${override[@]}" "${env_flags[@]}" \
    -e "GENRUN_REQUEST_ID=$REQUEST_ID" \
    -e "GENRUN_PROMPT=Build a small Vite/React app with an Express API." \
    -e GENRUN_MAX_TURNS=20 -e GENRUN_TIMEOUT=10m \
    "$IMAGE" >/dev/null
# While it runs (if it still does): the container's init process is genrun, PID 1 in its namespace.
# result.json's memory profile says the same without racing the run (checked below).
host_pid=$(podman inspect "$CONTAINER" --format '{{.State.Pid}}' 2>/dev/null || echo 0)
pid1_cmd= pid1_ns=
if [ "${host_pid:-0}" != 0 ]; then
    pid1_cmd=$(tr '\0' ' ' <"/proc/$host_pid/cmdline" 2>/dev/null || true)
    pid1_ns=$(awk '/^NSpid:/ {$1 = ""; print substr($0, 2)}' "/proc/$host_pid/status" 2>/dev/null || true)
fi
exit_code=$(podman wait "$CONTAINER")
podman logs "$CONTAINER" >"$WORK/container.log" 2>&1 || true
say "container exited $exit_code; init process seen: ${pid1_cmd:-<already gone>}${pid1_ns:+ (NSpid $pid1_ns)}"
if [ -n "$pid1_cmd" ]; then
    case "$pid1_cmd" in /usr/local/bin/genrun\ run*) ;; *) fail "PID 1 is not genrun: $pid1_cmd" ;; esac
    [ "$(echo "$pid1_ns" | awk '{print $NF}')" = 1 ] || fail "genrun is not PID 1 in the container (NSpid $pid1_ns)"
fi
kill "$standin_pid" && wait "$standin_pid" || true
standin_pid=
say "stand-in: $(head -1 "$WORK/standin.log")"

# --- checks -----------------------------------------------------------------------------------------
dir="$WORK/out/$REQUEST_ID"
if [ "$exit_code" != 0 ] || [ ! -f "$dir/result.json" ]; then
    tail -30 "$WORK/container.log" >&2
    ls -la "$dir" >&2 || true
    cat "$dir/result.json" >&2 2>/dev/null || true
    fail "the generation did not succeed"
fi
ls -la "$dir" | sed 's/^/  /' >&2
python3 - "$dir" "$WORK/container.log" <<'EOF' || fail "artifact checks"
import json, os, sys, tarfile
d, log = sys.argv[1], sys.argv[2]
r = json.load(open(os.path.join(d, "result.json")))
a = r["agent"]
assert r["outcome"] == "success" and r["exit_code"] == 0, (r["outcome"], r["exit_code"])
assert a["turns"] == 9, a["turns"]
assert a["cost_usd"] and a["cost_usd"] > 0, a["cost_usd"]
assert a["cli_version"] == "2.1.330", a["cli_version"]
assert a["session_id"], "no session id"
assert a["user"] in ("agent", "1000"), a["user"]
top = (r.get("memory") or {}).get("top_at_peak") or []
sup = [p for p in top if p.get("is_supervisor")]
assert not sup or sup[0]["pid"] == 1, f"genrun was not PID 1: {sup}"
gz = [f for f in os.listdir(d) if f.endswith(".tar.gz")]
assert gz, f"no .tar.gz archive in {os.listdir(d)}"
names = set(tarfile.open(os.path.join(d, gz[0])).getnames())
names = {n[2:] if n.startswith("./") else n for n in names}
for want in ["package.json", "server/index.js", "src/App.jsx", "index.html", ".gitignore", ".env.example"]:
    assert want in names, f"{want} missing from the archive: {sorted(names)}"
for never in ["node_modules/express/index.js", "logs/server.log", ".env", "npm-debug.log", "dist/bundle.js",
              "escape-link"]:
    assert never not in names, f"{never} in the archive"
app = tarfile.open(os.path.join(d, gz[0])).extractfile([m for m in tarfile.open(os.path.join(d, gz[0])).getmembers() if m.name.removeprefix("./") == "src/App.jsx"][0]).read().decode()
assert "Hello from genrun" in app, app
events = [json.loads(l) for l in open(log) if l.startswith("{")]
print(f"  result.json: outcome={r['outcome']} exit_code={r['exit_code']} turns={a['turns']} "
      f"cost_usd={a['cost_usd']} cli_version={a['cli_version']} session_id={a['session_id']} user={a['user']} "
      f"genrun_pid={sup[0]['pid'] if sup else '?'}",
      file=sys.stderr)
print(f"  archive {gz[0]}: {len(names)} entries, {sorted(names)}", file=sys.stderr)
print(f"  artifacts: {sorted(os.listdir(d))}; {len(events)} JSON log lines on stdout", file=sys.stderr)
EOF
# --- the same generation, stored to the S3 test server (reached over the host network) ---------------
s3bin=${S3_BIN:-$(dirname "$standin")/s3-testserver}
if [ -x "$s3bin" ]; then
    "$standin" generation >"$WORK/standin2.env" 2>"$WORK/standin2.log" &
    standin_pid=$!
    "$s3bin" genrun-smoke >"$WORK/s3.env" 2>"$WORK/s3.log" &
    s3_pid=$!
    for _ in $(seq 300); do
        grep -q '^CLAUDE_CODE_MAX_RETRIES=' "$WORK/standin2.env" 2>/dev/null \
            && grep -q '^S3_ROOT=' "$WORK/s3.env" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^S3_ROOT=' "$WORK/s3.env" || { cat "$WORK/s3.log" >&2; fail "the S3 test server did not start"; }
    s3_root=$(sed -n 's/^S3_ROOT=//p' "$WORK/s3.env")
    env_flags=()
    while IFS= read -r line; do env_flags+=(-e "$line"); done < <(cat "$WORK/standin2.env"; grep -v '^S3_ROOT=' "$WORK/s3.env")
    say "podman run (genrun run, request $REQUEST_ID-s3, output s3://genrun-smoke/runs at $(sed -n 's/^GENRUN_S3_ENDPOINT=//p' "$WORK/s3.env"))"
    s3_exit=0
    podman run --name "$CONTAINER-s3" "${CONTAINER_FLAGS[@]}" --network host "${override[@]}" "${env_flags[@]}" \
        -e "GENRUN_REQUEST_ID=$REQUEST_ID-s3" \
        -e "GENRUN_PROMPT=Build a small Vite/React app with an Express API." \
        -e GENRUN_OUTPUT=s3://genrun-smoke/runs -e GENRUN_MAX_TURNS=20 \
        "$IMAGE" >"$WORK/container-s3.log" 2>&1 || s3_exit=$?
    podman rm -f "$CONTAINER-s3" >/dev/null 2>&1
    # The server's objects live until it stops: check them first.
    stored="$s3_root/genrun-smoke/runs/$REQUEST_ID-s3"
    if [ "$s3_exit" != 0 ] || [ ! -f "$stored/result.json" ]; then
        tail -20 "$WORK/container-s3.log" >&2
        fail "the S3 run exited $s3_exit without a stored result.json"
    fi
    python3 - "$stored" <<'EOF' || fail "S3 artifact checks"
import json, os, sys
d = sys.argv[1]
r = json.load(open(os.path.join(d, "result.json")))
assert r["outcome"] == "success", r["outcome"]
names = sorted(n for n in os.listdir(d) if not n.startswith("."))
for want in ["app.tar.gz", "app.tar.zst", "manifest.json", "transcript.jsonl.zst"]:
    assert want in names, f"{want} not stored: {names}"
print(f"  S3: stored {names} under s3://genrun-smoke/runs/{os.path.basename(d)}/", file=sys.stderr)
EOF
    kill "$standin_pid" "$s3_pid" 2>/dev/null
    wait "$standin_pid" "$s3_pid" 2>/dev/null || true
    standin_pid= s3_pid=
else
    say "S3 run skipped: no s3-testserver binary next to $standin"
fi

if [ -n "${GENRUN_BIN_OVERRIDE:-}" ]; then
    say "DIAGNOSTIC PASS (genrun overridden by $GENRUN_BIN_OVERRIDE): not a pass of the image itself"
    exit 2
fi
say "PASS: a whole generation ran in the image with genrun as PID 1"
