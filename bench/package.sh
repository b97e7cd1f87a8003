#!/usr/bin/env bash
# Packaging benchmark (a figure, not a test): genrun package vs tar --exclude vs git ls-files | tar,
# on generated-app fixtures with 10k and 100k node_modules files. Prints medians of RUNS runs.
#
# Usage: bench/package.sh [WORKDIR]        (env: RUNS=7, SMALL=10000, LARGE=100000, GENRUN=path)
# The fixture comes from `cargo run --release -p genrun-packaging --example gen_fixture` (fixed seed),
# so the same command rebuilds the same trees. GENRUN defaults to target/release/genrun when present,
# else the library's `package_cli` example (the same code path as `genrun package`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/genrun-bench.XXXXXX)}
RUNS=${RUNS:-7}
SMALL=${SMALL:-10000}
LARGE=${LARGE:-100000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

(cd "$ROOT" && cargo build --quiet --release -p genrun-packaging --example gen_fixture --example package_cli)
GEN="$TARGET/release/examples/gen_fixture"
if [[ -z "${GENRUN:-}" && -x "$ROOT/target/release/genrun" ]]; then GENRUN="$ROOT/target/release/genrun"; fi
if [[ -n "${GENRUN:-}" ]]; then
  pkg() { echo "$GENRUN" package "$1" --out "$2" ${3:+--format "$3"}; }
  WHO="$GENRUN package"
else
  pkg() { echo "$TARGET/release/examples/package_cli" "$1" "$2" ${3:-}; }
  WHO="package_cli (library, release)"
fi

export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mkdir -p "$HOME"

# median_ms CMD...: runs CMD once to warm caches, then RUNS times; prints "wall_ms cpu_ms" medians
# (cpu = user + system time of the command and its children: robust on a loaded machine).
median_ms() {
  python3 - "$RUNS" "$@" <<'PY'
import resource, statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
def once():
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN); t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    t1 = time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (t1 - t0) * 1000, ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1000
once()
res = [once() for _ in range(runs)]
print("%.1f %.1f" % (statistics.median(w for w, _ in res), statistics.median(c for _, c in res)))
PY
}

declare -A RESULT
for n in "$SMALL" "$LARGE"; do
  ws="$WORK/ws-$n"; gws="$WORK/git-$n"; out="$WORK/out-$n"
  if [[ ! -d "$ws" ]]; then
    "$GEN" "$ws" "$n" 1 >/dev/null
    cp -a "$ws" "$gws"
    git -C "$gws" init -q
  fi
  mkdir -p "$out"
  RESULT[genrun,$n]=$(median_ms $(pkg "$ws" "$out/g"))
  RESULT[genrun_gz,$n]=$(median_ms $(pkg "$ws" "$out/gz" tar.gz))
  RESULT[tar,$n]=$(median_ms tar --exclude=node_modules --exclude='*.log' -czf "$out/tar.tgz" -C "$ws" .)
  RESULT[git,$n]=$(median_ms sh -c "cd '$gws' && git ls-files -co --exclude-standard -z | tar --null -T - -czf '$out/git.tgz'")
  RESULT[zst_bytes,$n]=$(stat -c %s "$out/g/app.tar.zst")
  RESULT[gz_bytes,$n]=$(stat -c %s "$out/g/app.tar.gz")
  RESULT[tar_bytes,$n]=$(stat -c %s "$out/tar.tgz")
  RESULT[git_bytes,$n]=$(stat -c %s "$out/git.tgz")
  RESULT[files,$n]=$(tar -tzf "$out/g/app.tar.gz" | grep -vc '/$')
done

echo "packaging benchmark: median of $RUNS runs (warm cache), $(nproc) cores, fixture in $WORK"
echo "genrun = $WHO (tar.zst + tar.gz); genrun gz = --format tar.gz only"
row() { # label key
  local a=(${RESULT[$2,$SMALL]}) b=(${RESULT[$2,$LARGE]})
  printf '%-44s %9s %9s   %9s %9s\n' "$1" "${a[0]}" "${a[1]}" "${b[0]}" "${b[1]}"
}
printf '%-44s %9s %9s   %9s %9s\n' "median ms (wall, cpu)" "wall" "cpu" "wall" "cpu"
printf '%-44s %19s   %19s\n' "" "nm=$SMALL" "nm=$LARGE"
row "genrun package (zst+gz)" genrun
row "genrun package --format tar.gz" genrun_gz
row "tar --exclude=node_modules --exclude='*.log'" tar
row "git ls-files -co --exclude-standard | tar" git
printf '%-44s %19s   %19s\n' "genrun app.tar.zst bytes" "${RESULT[zst_bytes,$SMALL]}" "${RESULT[zst_bytes,$LARGE]}"
printf '%-44s %19s   %19s\n' "genrun app.tar.gz bytes" "${RESULT[gz_bytes,$SMALL]}" "${RESULT[gz_bytes,$LARGE]}"
printf '%-44s %19s   %19s\n' "tar --exclude .tgz bytes" "${RESULT[tar_bytes,$SMALL]}" "${RESULT[tar_bytes,$LARGE]}"
printf '%-44s %19s   %19s\n' "git ls-files | tar .tgz bytes" "${RESULT[git_bytes,$SMALL]}" "${RESULT[git_bytes,$LARGE]}"
printf '%-44s %19s   %19s\n' "files kept by genrun" "${RESULT[files,$SMALL]}" "${RESULT[files,$LARGE]}"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
ga=(${RESULT[genrun,$LARGE]}) gb=(${RESULT[genrun,$SMALL]})
awk -v aw="${ga[0]}" -v bw="${gb[0]}" -v ac="${ga[1]}" -v bc="${gb[1]}" \
  'BEGIN {printf "genrun ratio 100k/10k node_modules: wall %.2f, cpu %.2f (target <= 1.2)\n", aw/bw, ac/bc}'
