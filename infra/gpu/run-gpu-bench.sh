#!/usr/bin/env bash
# Unpacks the layertap GPU bundle (built by infra/gpu/build-bundle.sh) and runs `layertap bench
# --compare-pytorch` for every GPU engine with the bundle's own Node, Vulkan loader and GLVND libraries.
# Needs on the host: bash, tar, xz (or python3 to unpack), glibc/libstdc++ and the NVIDIA driver.
#
#   bash run-gpu-bench.sh [options] [-- more bench options]
#
#   --bundle PATH        the archive (default: layertap-gpu.tar.xz next to this script) or an unpacked
#                        layertap-gpu directory
#   --dir DIR            where to unpack (default: next to the archive); an existing unpacked copy is reused
#   --out DIR            results (default: $OUT when set, else ./gpu-results)
#   --icd FILE           Vulkan ICD to use (default: the NVIDIA driver's nvidia_icd*.json, searched for);
#                        e.g. /usr/share/vulkan/icd.d/lvp_icd.json for Mesa's software lavapipe. Env LAYERTAP_GPU_ICD.
#   --egl-vendor FILE    GLVND EGL vendor file (default: 10_nvidia.json, searched for). Env LAYERTAP_GPU_EGL_VENDOR.
#   --engines LIST       default tfjs/webgpu,tfjs/webgpu+im2col,onnx/webgpu,onnx/cuda,tfjs/tensorflow (+im2col: TF.js'
#                        separate im2col shader; the last two run only when their native parts are in the bundle, else
#                        they are reported as skipped)
#   --images N           JPEGs per bench (default 1024)
#   --batch-size N       default 64
#   --image-size N       default 224
#   --layer SPEC         default features.9
#   --compare-pytorch M  each (default): PyTorch references with every engine; first: with the first engine that
#                        runs only (they do not depend on the engine); off
#   --python PATH        interpreter with torch + torchvision (default: python3 on PATH; none: reported as skipped)
#   --vulkan-debug       VK_LOADER_DEBUG=error,warn,driver for the loader's own account of what it tries
# Exit status: 0 when every engine that was not skipped produced its JSON, 1 otherwise, 2 on bad usage.
set -uo pipefail

say() { printf '[layertap gpu] %s\n' "$*" >&2; }
die() { say "$*"; exit "${2:-1}"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bundle_arg='' unpack_dir='' out=${OUT:-./gpu-results}
engines='tfjs/webgpu,tfjs/webgpu+im2col,onnx/webgpu,onnx/cuda,tfjs/tensorflow'
images=1024 batch=64 size=224 layer=features.9 compare=each python='' extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) bundle_arg=$2; shift 2 ;;
    --dir) unpack_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --icd) export LAYERTAP_GPU_ICD=$2; shift 2 ;;
    --egl-vendor) export LAYERTAP_GPU_EGL_VENDOR=$2; shift 2 ;;
    --engines) engines=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --batch-size) batch=$2; shift 2 ;;
    --image-size) size=$2; shift 2 ;;
    --layer) layer=$2; shift 2 ;;
    --compare-pytorch) compare=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --vulkan-debug) export VK_LOADER_DEBUG=error,warn,driver; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option $1 (see --help)" 2 ;;
  esac
done
case $compare in each|first|off) ;; *) die "--compare-pytorch takes each, first or off (got $compare)" 2 ;; esac

# 1. The unpacked bundle.
bundle=''
if [ -n "$bundle_arg" ] && [ -d "$bundle_arg" ]; then
  bundle=$(cd "$bundle_arg" && pwd)
else
  archive=${bundle_arg:-$here/layertap-gpu.tar.xz}
  if [ ! -f "$archive" ]; then
    [ -f "$here/gpu-env.sh" ] && [ -x "$here/node/bin/node" ] && archive=''   # this script inside an unpacked bundle
    [ -n "$archive" ] && die "no bundle: $archive does not exist (pass --bundle FILE)"
    bundle=$here
  else
    dest=${unpack_dir:-$(dirname "$archive")}
    mkdir -p "$dest" || die "cannot create $dest"
    bundle=$(cd "$dest" && pwd)/layertap-gpu
    if [ -f "$bundle/BUNDLE.txt" ] && [ "$bundle/BUNDLE.txt" -nt "$archive" ]; then
      say "reusing $bundle (unpacked earlier)"
    else
      say "unpacking $archive ($(du -h "$archive" | cut -f1)) into $dest"
      rm -rf "$bundle"
      started=$SECONDS
      if command -v xz >/dev/null 2>&1; then
        tar -C "$dest" -xJf "$archive" || die "unpacking failed"
      elif command -v python3 >/dev/null 2>&1; then
        say "no xz here: unpacking with python3's lzma and tarfile"
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$archive" "$dest" \
          || die "unpacking failed"
      else
        die "cannot unpack: neither xz nor python3 is installed (unpack $archive elsewhere and pass --bundle DIR)"
      fi
      touch "$bundle/BUNDLE.txt"
      say "unpacked in $((SECONDS - started)) s: $(du -sh "$bundle" | cut -f1)"
    fi
  fi
fi
[ -f "$bundle/gpu-env.sh" ] || die "$bundle is not a layertap GPU bundle (no gpu-env.sh)"

# 2. The environment: loader, ICD, GLVND, runtime dir.
export LAYERTAP_GPU_BUNDLE=$bundle
# shellcheck source=gpu-env.sh
. "$bundle/gpu-env.sh"
layertap_gpu_env || exit 1
node=$LAYERTAP_NODE
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
{
  echo "layertap GPU bench, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($(uname -srm))"
  sed -n '1,20p' "$bundle/BUNDLE.txt"
  echo "$LAYERTAP_GPU_ENV_REPORT"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} > "$out/environment.txt"
while IFS= read -r line; do say "$line"; done <<< "$LAYERTAP_GPU_ENV_REPORT"

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv >> "$out/nvidia-smi.txt" 2>&1
  say "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
else
  echo 'nvidia-smi not found on PATH' > "$out/nvidia-smi.txt"
  say 'nvidia-smi not found (no NVIDIA GPU information)'
fi

# 3. The adapter Dawn sees.
(cd "$bundle" && "$node" adapter-info.mjs) > "$out/adapter.json" 2> "$out/adapter.log"
adapter_rc=$?
adapter_line=$("$node" -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const a = r.adapter;
  const libs = r.libraries.join(", ") || "none";
  console.log(a ? `${[a.vendor, a.architecture, a.device].filter(Boolean).join(" / ")}: ${a.description ?? ""}${a.isFallbackAdapter ? " (software fallback adapter)" : ""}; libraries loaded: ${libs}` : `NO ADAPTER: ${r.error}; libraries loaded: ${libs}`);
' "$out/adapter.json" 2>&1)
say "WebGPU adapter: $adapter_line"
[ $adapter_rc -ne 0 ] && say "adapter messages: $(tr '\n' ' ' < "$out/adapter.log" | cut -c1-600)"

# 4. One bench per engine.
if [ -z "$python" ]; then python=$(command -v python3 || echo python3); fi
if [ "$compare" != off ]; then
  if torch=$("$python" -c 'import torch, torchvision; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null); then
    say "PyTorch comparison: $python, torch $torch (the reference runs on the CPU)"
  else
    say "PyTorch comparison will be reported as skipped: $python cannot import torch and torchvision"
  fi
fi
producer="$bundle/app/producer"
# The engines (and their native parts) are the worker's: `layertap bench` loads them from there.
worker="$bundle/app/worker"
ort_bin=$(cd "$worker" && "$node" -e 'const p=require("path");const m=require("fs").realpathSync("node_modules/@layertap/engines/package.json");try{console.log(p.join(p.dirname(require("module").createRequire(m).resolve("onnxruntime-node/package.json")),"bin"))}catch{console.log("")}')
skip_reason() {
  case $1 in
    onnx/cuda)
      if [ -z "$ort_bin" ]; then
        echo "onnxruntime-node is not in the bundle"
      elif [ -z "$(find "$ort_bin" -name 'libonnxruntime_providers_cuda.so' 2>/dev/null | head -n 1)" ]; then
        echo "onnxruntime-node's CUDA provider (libonnxruntime_providers_cuda.so, with CUDA 12 and cuDNN 9) is not in the bundle: its install script downloads it"
      fi ;;
    tfjs/tensorflow)
      if ! (cd "$worker" && "$node" -e 'const m=require("fs").realpathSync("node_modules/@layertap/engines/package.json");const r=require("module").createRequire(m);try{r.resolve("@tensorflow/tfjs-node-gpu")}catch{r.resolve("@tensorflow/tfjs-node")}' 2>/dev/null); then
        echo "@tensorflow/tfjs-node-gpu is not in the bundle (its install downloads libtensorflow with CUDA 11.2 and cuDNN 8.1)"
      fi ;;
  esac
}
summary="$out/summary.txt"
: > "$summary"
failed=0 compared=0 ran=0
IFS=',' read -r -a engine_list <<< "$engines"
for spec in "${engine_list[@]}"; do
  # `tfjs/webgpu+im2col`: TF.js WebGPU with its separate im2col shader (batches sliced to the binding limit).
  variant=""
  case $spec in *+im2col) variant=im2col; spec=${spec%+im2col} ;; esac
  engine=${spec%%/*} backend=${spec#*/}
  name="$engine-$backend${variant:+-$variant}"
  if [ "$engine" = "$spec" ] || [ -z "$backend" ]; then die "--engines takes engine/backend pairs such as tfjs/webgpu (got $spec)" 2; fi
  reason=$(skip_reason "$spec")
  if [ -n "$reason" ]; then
    printf '%-16s skipped: %s\n' "$spec" "$reason" | tee -a "$summary" >&2
    "$node" -e 'console.log(JSON.stringify({ engine: { label: process.argv[1] }, skipped: true, reason: process.argv[2] }))' "$spec" "$reason" > "$out/$name.json"
    continue
  fi
  args=(bench --engine "$engine" --backend "$backend" --layer "$layer" --batch-size "$batch" --image-size "$size" --images "$images" --json)
  [ "$variant" = im2col ] && args+=(--webgpu-im2col)
  if [ "$compare" = each ] || { [ "$compare" = first ] && [ $compared -eq 0 ]; }; then
    args+=(--compare-pytorch --python "$python")
    compared=1
  fi
  say "bench $spec: layertap ${args[*]} ${extra[*]}"
  started=$SECONDS
  (cd "$out" && "$node" "$producer/bin/layertap.js" "${args[@]}" "${extra[@]}") > "$out/$name.json" 2> "$out/$name.log"
  rc=$?
  ran=$((ran + 1))
  line=$("$node" -e '
    const [file, spec, rc, secs] = process.argv.slice(1);
    let r;
    try { r = JSON.parse(require("fs").readFileSync(file, "utf8")); } catch { r = undefined; }
    if (rc !== "0" || !r || !r.modelOnly) { console.log(`${spec.padEnd(16)} FAILED (exit ${rc}, ${secs} s): see ${require("path").basename(file, ".json")}.log`); process.exit(1); }
    const f = (n) => n.toFixed(1);
    let line = `${r.engine.label.padEnd(16)} model only ${f(r.modelOnly.imagesPerSecond)} images/s, end to end ${f(r.endToEnd.imagesPerSecond)} images/s ` +
      `(${r.settings.layers.join(",")}, batch ${r.settings.batchSize}, ${r.settings.imageSize} px, ${r.settings.images} images, inference ${f(r.modelOnly.inferenceMsPerBatch)} + readback ${f(r.modelOnly.readbackMsPerBatch)} ms per batch, peak RSS ${r.peakRssMb.toFixed(0)} MB)`;
    const p = r.pytorch;
    if (!p) line += "; PyTorch not compared";
    else if (!p.available) line += `; PyTorch skipped: ${p.reason.split("\n")[0].slice(0, 200)}`;
    else line += `; PyTorch ${p.versions.torch} seed ${f(p.seed.imagesPerSecond)}, truncated ${f(p.truncated.imagesPerSecond)} images/s (layertap ${f(p.ratios.seed)}x / ${f(p.ratios.truncated)}x)`;
    console.log(line);
  ' "$out/$name.json" "$spec" "$rc" "$((SECONDS - started))")
  bad=$?
  echo "$line" | tee -a "$summary" >&2
  if [ $bad -ne 0 ]; then
    failed=$((failed + 1))
    tail -n 5 "$out/$name.log" | sed 's/^/    /' >&2
  fi
done

say "results in $out: summary.txt, one JSON and log per engine, environment.txt, adapter.json, nvidia-smi.txt"
if [ $failed -gt 0 ]; then say "$failed of $ran engine(s) failed"; exit 1; fi
[ $ran -eq 0 ] && say 'no engine ran'
exit 0
