#!/usr/bin/env bash
# Builds the self-contained layertap GPU bundle for an offline x86-64 Linux host that has an NVIDIA driver but
# no Node.js (the recipe of shared/GPU-HOST.md): this machine's node binary, production node_modules of the
# layertap CLI (incl. `bench`) and of the worker with the workspace packages' dist/ (pnpm deploy, pruned to
# linux-x64), and Debian's Vulkan loader and GLVND libraries. Output (default infra/gpu/build/dist/):
#   layertap-gpu.tar.xz   the bundle (one .tar.xz; inside, layertap-gpu/)
#   run-gpu-bench.sh      unpacks it and runs the GPU benches (also inside the bundle)
#   SIZES.txt             what is in it, uncompressed and compressed per part
#
#   bash infra/gpu/build-bundle.sh [--out DIR] [--work DIR] [--cache DIR] [--debs DIR] [--no-build]
#
#   --out DIR     where the archive goes (default infra/gpu/build/dist)
#   --work DIR    staging directory, emptied first (default infra/gpu/build/work)
#   --cache DIR   downloaded .debs and compressed parts, kept between builds (default infra/gpu/build/cache)
#   --debs DIR    take the seven Debian packages from DIR instead of `apt-get download`
#   --no-build    do not run `pnpm run build` (turbo) first
# Env LAYERTAP_BUNDLE_XZ: xz options (default "-6 -T2"). Fails when the archive is not under 64 MiB.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
gpu=$root/infra/gpu
out=$gpu/build/dist work=$gpu/build/work cache=$gpu/build/cache debs_dir='' build=true
read -r -a xz_opts <<< "${LAYERTAP_BUNDLE_XZ:--6 -T2}"
limit=$((64 * 1024 * 1024))
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --debs) debs_dir=$2; shift 2 ;;
    --no-build) build=false; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

started=$SECONDS step_started=$SECONDS
say() { printf '\033[1m[gpu bundle]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
step() { say "$* (at $((SECONDS - started)) s)"; step_started=$SECONDS; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1048576 }'; }
# Bytes of the regular files under the paths, each hard-linked file once.
bytes() { find "$@" -type f -printf '%i %s\n' | sort -u | awk '{ s += $2 } END { print s + 0 }'; }

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "build on x86-64 Linux: the bundle carries this machine's node binary"
for tool in pnpm node tar xz dpkg sha256sum du; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" --version)
# The host has glibc and libstdc++, nothing else: a node linked to libnode/libuv/libicu (Debian's nodejs) would not run.
unexpected=$(ldd "$node_bin" | awk '{ print $1 }' | grep -Ev '^(linux-vdso\.so|/lib64/ld-linux-x86-64\.so|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)\.so)' || true)
[ -z "$unexpected" ] || die "$node_bin links $(echo "$unexpected" | tr '\n' ' '): use an official Node.js build (nodejs.org or NodeSource), which links only glibc and libstdc++"

mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd) cache=$(cd "$cache" && pwd)
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)
stage=$work/layertap-gpu
mkdir -p "$stage/node/bin" "$stage/app" "$stage/bin" "$work/parts"
log=$work/build.log

if $build; then
  step "building the workspace (pnpm run build)"
  (cd "$root" && TURBO_TELEMETRY_DISABLED=1 pnpm run build --output-logs=errors-only) >> "$log" 2>&1 || { tail -n 30 "$log" >&2; die "pnpm run build failed (log: $log)"; }
fi
for d in "$root"/packages/*/ "$root"/apps/producer/ "$root"/apps/worker/; do
  compgen -G "$d/dist/*.js" >/dev/null || die "${d#"$root"/}dist/ is missing: run pnpm build"
done

step "pnpm deploy --prod of @layertap/producer and @layertap/worker"
for app in producer worker; do
  (cd "$root" && pnpm --filter "@layertap/$app" deploy --prod --legacy "$stage/app/$app") >> "$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "pnpm deploy of @layertap/$app failed (log: $log)"; }
done
# The CLI reads its sample photos (bench images, demo) next to dist/ (its package.json `files` lists them; this
# keeps older checkouts working). The PyTorch reference ships in @layertap/pipeline's `bench/`.
[ -e "$stage/app/producer/samples" ] || cp -R "$root/apps/producer/samples" "$stage/app/producer/samples"

step "pruning node_modules to linux-x64"
"$node_bin" "$gpu/prune-node-modules.mjs" --platform linux-x64 --report "$work/prune.txt" "$stage/app/producer" "$stage/app/worker" >&2
# `layertap bench` runs the worker's engines: @layertap/pipeline is an optional peer of the CLI, not in its
# --prod deploy, so the CLI gets the worker's copy
# (linked after pruning, which keeps only what each deploy declares and refuses links between deploys).
pipeline_link="$stage/app/producer/node_modules/@layertap/pipeline"
[ -e "$pipeline_link" ] || ln -s ../../../worker/node_modules/@layertap/pipeline "$pipeline_link"

step "Debian Vulkan loader and GLVND libraries"
if [ -z "$debs_dir" ]; then
  debs_dir=$cache/debs
  mkdir -p "$debs_dir"
  missing=()
  for p in "${DEBS[@]}"; do compgen -G "$debs_dir/${p}_*_amd64.deb" >/dev/null || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get is not available: download ${missing[*]} (amd64 .debs) and pass --debs DIR"
    download() { (cd "$debs_dir" && apt-get download -o APT::Sandbox::User=root "${missing[@]}") >> "$log" 2>&1; }
    if ! download; then
      # A fresh machine may have no package lists yet.
      [ "$(id -u)" = 0 ] && say "apt-get download failed: apt-get update, then again" && apt-get update -qq >> "$log" 2>&1 && download \
        || { tail -n 10 "$log" >&2; die "apt-get download ${missing[*]} failed (run apt-get update, or pass --debs DIR)"; }
    fi
  fi
fi
deb_versions=()
for p in "${DEBS[@]}"; do
  deb=$(compgen -G "$debs_dir/${p}_*_amd64.deb" | sort -V | tail -n 1) || die "no ${p}_*_amd64.deb in $debs_dir"
  dpkg -x "$deb" "$stage/system"
  deb_versions+=("$p $(dpkg-deb -f "$deb" Version)")
done
rm -rf "$stage/system/usr/share/bug" "$stage/system/usr/share/lintian"
find "$stage/system/usr/share/doc" -name 'changelog*' -delete
[ -e "$stage/system/usr/lib/x86_64-linux-gnu/libvulkan.so.1" ] || die "libvulkan.so.1 missing after unpacking the .debs"

step "scripts, wrappers, node"
cp "$gpu/run-gpu-bench.sh" "$gpu/gpu-env.sh" "$gpu/adapter-info.mjs" "$gpu/README.md" "$stage/"
for cmd in layertap layertap-worker; do
  app=producer; [ $cmd = layertap-worker ] && app=worker
  cat > "$stage/bin/$cmd" <<EOF
#!/usr/bin/env bash
# $cmd with the bundle's node, Vulkan loader and GLVND (LAYERTAP_GPU_ICD / LAYERTAP_GPU_EGL_VENDOR to choose
# the ICD and EGL vendor file; see gpu-env.sh).
here=\$(cd "\$(dirname "\$(readlink -f "\${BASH_SOURCE[0]}")")/.." && pwd)
export LAYERTAP_GPU_BUNDLE=\$here
. "\$here/gpu-env.sh"
layertap_gpu_env || exit 1
[ -n "\${LAYERTAP_GPU_QUIET:-}" ] || printf '%s\n' "\$LAYERTAP_GPU_ENV_REPORT" | sed 's/^/[layertap gpu] /' >&2
exec "\$LAYERTAP_NODE" "\$here/app/$app/bin/$cmd.js" "\$@"
EOF
  chmod 755 "$stage/bin/$cmd"
done
cp "$node_bin" "$stage/node/bin/node"
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
{
  echo "layertap GPU bundle built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $commit"
  echo "node $node_version (linux-x64), pnpm $(pnpm --version)"
  echo "Debian: $(printf '%s, ' "${deb_versions[@]}" | sed 's/, $//')"
  echo "contents: node/bin/node; system/usr/lib/x86_64-linux-gnu (Vulkan loader, GLVND); app/producer (layertap CLI),"
  echo "app/worker (layertap-worker); bin/layertap, bin/layertap-worker (wrappers); run-gpu-bench.sh; gpu-env.sh"
} > "$stage/BUNDLE.txt"

# Parts, each compressed on its own and concatenated: xz decompresses concatenated streams as one, and every part
# but the last is a tar stream without its end-of-archive blocks (-b 1: exactly two 512-byte zero blocks), so the
# result is one ordinary .tar.xz. The parts give the sizes per part; the tar streams are reproducible (sorted, fixed
# owner and mtime), so a part whose content has not changed since the last build comes from the cache.
tar_common=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@946684800 -b 1)
xz_key=$(echo "${xz_opts[*]}" | tr -dc 'A-Za-z0-9')
pnpm_store='app/*/node_modules/.pnpm'
declare -A part_globs=(
  [onnxruntime-node]="$pnpm_store/onnxruntime-node@*"
  [webgpu-dawn]="$pnpm_store/webgpu@*"
  [sharp-libvips]="$pnpm_store/@img+sharp-*"
)
part_order=(node system-libs onnxruntime-node webgpu-dawn sharp-libvips js-and-scripts)
declare -A part_raw
mkdir -p "$cache/parts"
make_part() { # name last(true|false) -- tar arguments (paths relative to $work)
  local name=$1 last=$2; shift 3
  local tarfile=$work/parts/$name.tar key cached
  (cd "$work" && tar "${tar_common[@]}" -cf - "$@") | if $last; then cat; else head -c -1024; fi > "$tarfile"
  key=$(sha256sum < "$tarfile" | cut -c1-16)
  cached=$cache/parts/$name-$key-$xz_key.tar.xz
  if [ -f "$cached" ]; then
    say "  $name: unchanged, from the cache"
  else
    say "  $name: compressing $(mib "$(stat -c %s "$tarfile")")"
    xz "${xz_opts[@]}" < "$tarfile" > "$cached.tmp"
    rm -f "$cache/parts/$name"-*.tar.xz
    mv "$cached.tmp" "$cached"
  fi
  cp "$cached" "$work/parts/$name.tar.xz"
  rm -f "$tarfile"
}
step "compressing the parts (xz ${xz_opts[*]})"
make_part node false -- layertap-gpu/node
part_raw[node]=$(bytes "$stage/node")
make_part system-libs false -- layertap-gpu/system
part_raw[system-libs]=$(bytes "$stage/system")
excludes=()
for name in onnxruntime-node webgpu-dawn sharp-libvips; do
  paths=$(cd "$work" && compgen -G "layertap-gpu/${part_globs[$name]}" || true)
  [ -n "$paths" ] || die "nothing matches ${part_globs[$name]} in the staged bundle"
  mapfile -t list <<< "$paths"
  make_part "$name" false -- "${list[@]}"
  part_raw[$name]=$(cd "$work" && bytes "${list[@]}")
  excludes+=(--exclude="layertap-gpu/${part_globs[$name]}")
done
rest=$(cd "$work/layertap-gpu" && find . -mindepth 1 -maxdepth 1 ! -name node ! -name system -printf 'layertap-gpu/%P\n' | sort)
mapfile -t rest_list <<< "$rest"
make_part js-and-scripts true -- "${excludes[@]}" "${rest_list[@]}"
part_raw[js-and-scripts]=$(( $(bytes "$stage") - part_raw[node] - part_raw[system-libs] - part_raw[onnxruntime-node] - part_raw[webgpu-dawn] - part_raw[sharp-libvips] ))

archive=$out/layertap-gpu.tar.xz
for name in "${part_order[@]}"; do cat "$work/parts/$name.tar.xz"; done > "$archive.tmp"
mv "$archive.tmp" "$archive"
cp "$gpu/run-gpu-bench.sh" "$out/run-gpu-bench.sh"
chmod 755 "$out/run-gpu-bench.sh"

step "checking the archive"
expected=$(cd "$work" && find layertap-gpu -mindepth 1 | wc -l)
listed=$(tar -tJf "$archive" | wc -l) || die "the archive does not list"
[ "$listed" -eq "$expected" ] || die "the archive lists $listed entries, the staging directory has $expected"
total=$(stat -c %s "$archive")
(cd "$out" && sha256sum layertap-gpu.tar.xz run-gpu-bench.sh > SHA256SUMS)

{
  printf '%-18s %14s %14s\n' part uncompressed compressed
  sum_raw=0
  for name in "${part_order[@]}"; do
    xz_size=$(stat -c %s "$work/parts/$name.tar.xz")
    printf '%-18s %14s %14s\n' "$name" "$(mib "${part_raw[$name]}")" "$(mib "$xz_size")"
    sum_raw=$((sum_raw + part_raw[$name]))
  done
  printf '%-18s %14s %14s   (%d bytes; limit %s)\n' total "$(mib "$sum_raw")" "$(mib "$total")" "$total" "$(mib $limit)"
  echo
  echo "node $node_version; $(head -n 1 "$stage/BUNDLE.txt")"
  echo "xz ${xz_opts[*]}; built in $((SECONDS - started)) s"
  echo
  cat "$work/prune.txt"
} > "$out/SIZES.txt"
cat "$out/SIZES.txt" >&2
[ "$total" -lt "$limit" ] || die "the bundle is $(mib "$total"), over the $(mib $limit) limit"
say "done in $((SECONDS - started)) s: $archive ($(mib "$total")) and $out/run-gpu-bench.sh"
