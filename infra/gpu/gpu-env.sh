# shellcheck shell=bash
# Sourced (bash) from the unpacked GPU bundle: sets up the environment its Node processes need on a host with
# an NVIDIA driver and nothing else (GPU-HOST recipe, steps 3-4):
#   - the bundle's Debian Vulkan loader and GLVND libraries first on LD_LIBRARY_PATH;
#   - VK_DRIVER_FILES (and VK_ICD_FILENAMES for older loaders) = the Vulkan ICD: LAYERTAP_GPU_ICD when set
#     (e.g. Mesa's lavapipe, /usr/share/vulkan/icd.d/lvp_icd.json), else what VK_DRIVER_FILES/VK_ICD_FILENAMES
#     already name, else the NVIDIA driver's nvidia_icd*.json found in the usual directories;
#   - __EGL_VENDOR_LIBRARY_FILENAMES = NVIDIA's GLVND EGL vendor file (LAYERTAP_GPU_EGL_VENDOR to choose it);
#   - the directory of the driver library the ICD names, when the dynamic linker would not find it;
#   - XDG_RUNTIME_DIR (Dawn needs one);
#   - LAYERTAP_NODE = the bundle's node.
# LAYERTAP_GPU_ICD_DIRS / LAYERTAP_GPU_EGL_DIRS (colon-separated) replace the directories searched.
# Needs LAYERTAP_GPU_BUNDLE (the unpacked directory). Lines describing what it found are collected in
# LAYERTAP_GPU_ENV_REPORT; `layertap_gpu_env` returns 1 with a readable message on stderr when no ICD is found.

layertap_gpu_env() {
  local bundle=${LAYERTAP_GPU_BUNDLE:?LAYERTAP_GPU_BUNDLE must name the unpacked bundle}
  local report=() icd='' how='' d f
  local libdir="$bundle/system/usr/lib/x86_64-linux-gnu"

  export LAYERTAP_NODE="$bundle/node/bin/node"
  if [ ! -x "$LAYERTAP_NODE" ]; then
    echo "layertap GPU bundle: $LAYERTAP_NODE is missing: unpack the whole bundle" >&2
    return 1
  fi
  report+=("node: $LAYERTAP_NODE ($("$LAYERTAP_NODE" --version 2>&1))")

  # Vulkan ICD: which driver the loader talks to.
  local icd_dirs egl_dirs
  IFS=: read -r -a icd_dirs <<< "${LAYERTAP_GPU_ICD_DIRS:-/usr/local/nvidia/share/vulkan/icd.d:/usr/share/vulkan/icd.d:/etc/vulkan/icd.d:/usr/local/share/vulkan/icd.d:/usr/local/etc/vulkan/icd.d}"
  IFS=: read -r -a egl_dirs <<< "${LAYERTAP_GPU_EGL_DIRS:-/usr/local/nvidia/share/glvnd/egl_vendor.d:/usr/share/glvnd/egl_vendor.d:/etc/glvnd/egl_vendor.d:/usr/local/share/glvnd/egl_vendor.d}"
  if [ -n "${LAYERTAP_GPU_ICD:-}" ]; then
    if [ ! -f "$LAYERTAP_GPU_ICD" ]; then
      echo "layertap GPU bundle: the Vulkan ICD file $LAYERTAP_GPU_ICD (--icd) does not exist" >&2
      return 1
    fi
    icd=$LAYERTAP_GPU_ICD
    how='chosen with --icd / LAYERTAP_GPU_ICD'
  elif [ -n "${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}}" ]; then
    icd=${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}
    how='from VK_DRIVER_FILES/VK_ICD_FILENAMES in the environment'
  else
    local found=()
    for d in "${icd_dirs[@]}"; do
      for f in "$d"/nvidia_icd*.json; do [ -f "$f" ] && found+=("$f"); done
    done
    if [ ${#found[@]} -eq 0 ]; then
      {
        echo "layertap GPU bundle: no NVIDIA Vulkan ICD found (looked for nvidia_icd*.json in ${icd_dirs[*]})."
        echo "  The NVIDIA driver installs it with its Vulkan support. In a container, the NVIDIA container toolkit"
        echo "  mounts it only with NVIDIA_DRIVER_CAPABILITIES including 'graphics' (or 'all')."
        echo "  Find it with: find / -name 'nvidia_icd*.json' 2>/dev/null; then pass --icd /path/to/nvidia_icd.json."
        echo "  Present ICDs: $(ls "${icd_dirs[@]}" 2>/dev/null | grep -h '\.json$' | tr '\n' ' ')"
      } >&2
      return 1
    fi
    icd=${found[0]}
    how='found'
    [ ${#found[@]} -gt 1 ] && how="found (also present: ${found[*]:1})"
  fi
  export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
  report+=("vulkan ICD: $icd ($how)")

  # The driver library the ICD names (libGLX_nvidia.so.0 for NVIDIA): make sure the dynamic linker finds it.
  local extra_dirs=() lib
  lib=$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "${icd%%:*}" 2>/dev/null | head -n 1)
  if [ -n "$lib" ]; then
    case $lib in
      /*) if [ -e "$lib" ]; then report+=("ICD library: $lib"); else report+=("ICD library: $lib MISSING: the loader will find no device"); fi ;;
      */*) report+=("ICD library: $lib (relative to $(dirname "${icd%%:*}"))") ;;
      *)
        local ldconfig_bin where=''
        ldconfig_bin=$(command -v ldconfig || true)
        [ -z "$ldconfig_bin" ] && for f in /sbin/ldconfig /usr/sbin/ldconfig; do [ -x "$f" ] && ldconfig_bin=$f && break; done
        if [ -n "$ldconfig_bin" ]; then
          where=$("$ldconfig_bin" -p 2>/dev/null | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
        fi
        if [ -n "$where" ]; then
          report+=("ICD library: $lib -> $where (dynamic linker cache)")
        else
          for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
            if [ -e "$d/$lib" ]; then where="$d/$lib"; extra_dirs+=("$d"); break; fi
          done
          if [ -n "$where" ]; then
            report+=("ICD library: $lib -> $where (added $(dirname "$where") to LD_LIBRARY_PATH)")
          else
            report+=("ICD library: $lib NOT FOUND in the linker cache or the usual directories: the loader will find no device")
          fi
        fi
        ;;
    esac
  fi

  # GLVND EGL vendor file: NVIDIA's Vulkan driver lives in libGLX_nvidia and needs GLVND to set up.
  local egl=''
  if [ -n "${LAYERTAP_GPU_EGL_VENDOR:-}" ]; then
    if [ ! -f "$LAYERTAP_GPU_EGL_VENDOR" ]; then
      echo "layertap GPU bundle: the EGL vendor file $LAYERTAP_GPU_EGL_VENDOR (--egl-vendor) does not exist" >&2
      return 1
    fi
    egl=$LAYERTAP_GPU_EGL_VENDOR
    report+=("GLVND EGL vendor: $egl (chosen with --egl-vendor)")
  else
    for d in "${egl_dirs[@]}"; do
      for f in "$d"/*nvidia*.json; do [ -f "$f" ] && [ -z "$egl" ] && egl=$f; done
    done
    if [ -n "$egl" ]; then
      report+=("GLVND EGL vendor: $egl (found)")
    elif grep -q nvidia "${icd%%:*}" 2>/dev/null; then
      report+=("GLVND EGL vendor: none found (10_nvidia.json): if the loader says \"Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'\", pass --egl-vendor")
    else
      report+=("GLVND EGL vendor: none (not needed for this ICD)")
    fi
  fi
  [ -n "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl

  local ld="$libdir"
  for d in "${extra_dirs[@]}"; do ld="$ld:$d"; done
  export LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  report+=("Vulkan loader and GLVND: $libdir (first on LD_LIBRARY_PATH)")

  if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ] || [ ! -w "$XDG_RUNTIME_DIR" ]; then
    export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/layertap-xdg-$(id -u)"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
  fi
  report+=("XDG_RUNTIME_DIR: $XDG_RUNTIME_DIR")
  LAYERTAP_GPU_ENV_REPORT=$(printf '%s\n' "${report[@]}")
  export LAYERTAP_GPU_ENV_REPORT
}
