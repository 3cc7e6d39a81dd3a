#!/usr/bin/env bash
# pi-check: prove that vitedge runs on Raspberry Pi OS (Debian bookworm, arm64) without a Pi.
#
# Builds a Debian bookworm arm64 root file system with debootstrap (cached as a tarball), runs it under
# qemu-user-static, installs the vitedge wheel built here plus PyPI's aarch64 wheels of numpy, pillow,
# onnxruntime and ai-edge-litert (the versions this machine has, so only the architecture differs), and runs
# `vitedge verify --json` in the guest, with no torch there, on tiny ONNX and TFLite fp32 artifacts made here:
# their checksums and their self-checks (preprocessing parity and model parity against the torch references
# the conversion stored, with the tolerance it passed). Prints PASS or FAIL per artifact and verdict and
# exits non-zero on any miss.
#
# Needs root (debootstrap, chroot, mount), Linux, and network access to a Debian mirror and PyPI.
# Run `make pi-check`, or scripts/pi_check.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PI_CHECK_CACHE:-$ROOT/.pi-check}"
MIRROR="${PI_CHECK_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SUITE=bookworm
ARCH=arm64
FRESH=0
KEEP=0
DRY_RUN=0
HOST_CA="${PI_CHECK_CA_BUNDLE:-}"

usage() {
    cat <<EOF
usage: scripts/pi_check.sh [--cache DIR] [--mirror URL] [--fresh] [--keep] [--dry-run]

Runs \`vitedge verify\` on Debian $SUITE $ARCH (Raspberry Pi OS 64-bit) under qemu, without torch: the
self-checks of ONNX and TFLite artifacts made here (preprocessing and model parity with the conversion's).

  --cache DIR      where the root file system tarball, pip's downloads and the work folder live
                   (default: .pi-check/ in the repository; env PI_CHECK_CACHE)
  --mirror URL     Debian mirror for debootstrap (default: $MIRROR; env PI_CHECK_MIRROR)
  --fresh          rebuild the root file system even when the cached tarball exists
  --keep           keep the unpacked root file system (CACHE/work/rootfs) afterwards
  --dry-run        check the options and this machine, print the plan, change nothing
  -h, --help       this text

Environment: PYTHON (the host Python with vitedge[convert]; default .venv/bin/python),
PI_CHECK_CA_BUNDLE (CA certificates for pip inside the root file system; default: the host's).
EOF
}

die() {
    echo "pi-check: error: $*" >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --cache) [[ $# -ge 2 ]] || die "--cache needs a folder"; CACHE="$2"; shift 2 ;;
        --cache=*) CACHE="${1#*=}"; shift ;;
        --mirror) [[ $# -ge 2 ]] || die "--mirror needs a URL"; MIRROR="$2"; shift 2 ;;
        --mirror=*) MIRROR="${1#*=}"; shift ;;
        --fresh) FRESH=1; shift ;;
        --keep) KEEP=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ "$MIRROR" =~ ^(https?|file):// ]] || die "--mirror must be an http(s):// or file:// URL, got '$MIRROR'"
[[ -n "$CACHE" ]] || die "--cache must not be empty"
if [[ "$PYTHON" != /* ]]; then  # the host steps run from other folders
    if [[ "$PYTHON" == */* ]]; then PYTHON="$PWD/$PYTHON"; else PYTHON="$(command -v "$PYTHON" || echo "$PYTHON")"; fi
fi
mkdir_cache() { mkdir -p "$CACHE"; CACHE="$(cd "$CACHE" && pwd)"; }

WORK_REL="work"
TARBALL_NAME="debian-$SUITE-$ARCH-rootfs.tar.gz"
HOST_MACHINE="$(uname -m)"
START=$SECONDS
step() { printf '\n== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }

if [[ $DRY_RUN -eq 1 ]]; then
    echo "pi-check plan (dry run; nothing is changed):"
    echo "  host:       $(uname -s) $HOST_MACHINE, $(id -un)$([[ $EUID -eq 0 ]] || echo ' (not root: a real run needs root)')"
    echo "  cache:      $CACHE (rootfs tarball $TARBALL_NAME$([[ -f "$CACHE/$TARBALL_NAME" ]] && echo ', present' || echo ', to build'))"
    echo "  mirror:     $MIRROR ($SUITE, $ARCH)"
    echo "  python:     $PYTHON"
    for tool in debootstrap qemu-aarch64-static update-binfmts; do
        printf '  %-20s %s\n' "$tool" "$(command -v "$tool" || echo 'absent: will be installed with apt-get')"
    done
    echo "  steps: host tools -> binfmt_misc + qemu-aarch64 -> rootfs (debootstrap or cache) -> wheel ->"
    echo "         tiny ONNX + TFLite fp32 artifacts (each with its self-check) -> chroot: venv, pip install"
    echo "         vitedge[onnx] -> vitedge verify --json (ONNX) -> [tflite] -> vitedge verify --json (TFLite) -> verdicts"
    exit 0
fi

[[ "$(uname -s)" == Linux ]] || die "needs Linux (debootstrap, chroot, binfmt_misc)"
[[ $EUID -eq 0 ]] || die "needs root (debootstrap, chroot and mount); run: sudo make pi-check"
[[ -x "$PYTHON" ]] || die "no Python at $PYTHON; run make setup first, or set PYTHON"
mkdir_cache
WORK="$CACHE/$WORK_REL"
ROOTFS="$WORK/rootfs"
TARBALL="$CACHE/$TARBALL_NAME"

# -- cleanup: unmount what we mounted, then (unless --keep) remove the unpacked rootfs ---------------
MOUNTS=()
cleanup() {
    local status=$? i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    if [[ $KEEP -eq 0 && -d "$ROOTFS" ]]; then
        if grep -qF " $ROOTFS/" /proc/self/mounts; then
            echo "pi-check: warning: something is still mounted under $ROOTFS; not removing it" >&2
        else
            rm -rf --one-file-system "$ROOTFS"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

logged() {  # logged LOG COMMAND...: the command's output goes to LOG; on failure, show LOG's end and stop
    local log="$1"
    shift
    if ! "$@" >>"$log" 2>&1; then
        tail -25 "$log" >&2
        die "failed: $* (whole log: $log)"
    fi
}

verdict_from() {  # verdict_from OUT LOG COMMAND...: `vitedge verify --json` to OUT (exit 1 is a verdict: kept), stderr to LOG
    local out="$1" log="$2" status=0
    shift 2
    "$@" >"$out" 2>>"$log" || status=$?
    if [[ $status -gt 1 || ! -s "$out" ]]; then
        tail -25 "$log" >&2
        die "failed: $* (whole log: $log)"
    fi
}

mount_into_rootfs() {  # mount_into_rootfs TARGET mount-args...
    local target="$1"
    shift
    mkdir -p "$target"
    mount "$@" "$target"
    MOUNTS+=("$target")
}

# -- 1. host tools ----------------------------------------------------------------------------------
step "host tools: debootstrap, qemu-user-static, binfmt-support"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [[ "$HOST_MACHINE" != aarch64 ]]; then
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- 2. binfmt_misc: run arm64 binaries through qemu ---------------------------------------------------
if [[ "$HOST_MACHINE" != aarch64 ]]; then
    step "binfmt_misc and qemu-aarch64"
    BINFMT=/proc/sys/fs/binfmt_misc
    if [[ ! -e "$BINFMT/register" ]]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" \
            || die "cannot mount binfmt_misc (in a container? run it privileged, or on the host)"
    fi
    if ! grep -qs '^enabled' "$BINFMT/qemu-aarch64"; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || true
    fi
    if ! grep -qs '^enabled' "$BINFMT/qemu-aarch64" && [[ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]]; then
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT/register"
    fi
    grep -qs '^enabled' "$BINFMT/qemu-aarch64" || die "qemu-aarch64 is not registered in binfmt_misc"
    grep -qs '^flags:.*F' "$BINFMT/qemu-aarch64" \
        || die "qemu-aarch64 is registered without the F (fix binary) flag, so it cannot run inside a chroot"
    echo "qemu-aarch64: $(head -1 "$BINFMT/qemu-aarch64"), $(grep '^flags' "$BINFMT/qemu-aarch64")"
fi

# -- 3. the root file system (debootstrap once, then the cached tarball) ---------------------------------
mkdir -p "$WORK"
if [[ -d "$ROOTFS" ]]; then
    grep -qF " $ROOTFS/" /proc/self/mounts && die "$ROOTFS has something mounted in it (an earlier run?); unmount it first"
    rm -rf --one-file-system "$ROOTFS"
fi
if [[ $FRESH -eq 1 || ! -f "$TARBALL" ]]; then
    step "debootstrap $SUITE $ARCH from $MIRROR (a few minutes; cached afterwards as $TARBALL)"
    building="$WORK/rootfs.building"
    rm -rf --one-file-system "$building"
    debootstrap --arch="$ARCH" --variant=minbase \
        --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$building" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    rm -rf "$building"/var/cache/apt/archives/*.deb "$building"/var/lib/apt/lists/*_Packages
    tar -C "$building" -czf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    mv "$building" "$ROOTFS"
else
    step "unpack the cached root file system $TARBALL"
    mkdir -p "$ROOTFS"
    tar -C "$ROOTFS" -xzf "$TARBALL"
fi
GUEST_PYTHON_VERSION="$(chroot "$ROOTFS" /usr/bin/python3 -c 'import platform; print(platform.machine(), platform.python_version())')"
echo "guest: Debian $(cat "$ROOTFS/etc/debian_version"), $GUEST_PYTHON_VERSION"

# -- 4. on the host: the wheel and tiny artifacts (with their self-checks) ------------------------------------
step "host: build the vitedge wheel (no dependencies)"
EXCHANGE="$ROOTFS/pi-check"  # what the guest sees as /pi-check
mkdir -p "$EXCHANGE/wheels" "$WORK/host"
HOST_LOG="$WORK/host.log"
: >"$HOST_LOG"
logged "$HOST_LOG" "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$EXCHANGE/wheels" "$ROOT"
WHEEL_PATHS=("$EXCHANGE"/wheels/vitedge-*.whl)
WHEEL_NAME="$(basename "${WHEEL_PATHS[0]}")"
echo "$WHEEL_NAME"

step "host: a tiny ViT, converted to ONNX fp32 and TFLite fp32 (each conversion writes the artifact's self-check)"
MAKE_MODEL="$(cat <<'PY'
import json, sys
from pathlib import Path

import torch
from transformers import ViTConfig, ViTForImageClassification

folder = Path(sys.argv[1])
labels = ["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "honeydew", "kiwi", "lemon"]
config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=64,
                   patch_size=8, num_labels=len(labels), id2label=dict(enumerate(labels)),
                   label2id={label: i for i, label in enumerate(labels)})
torch.manual_seed(0)
model = ViTForImageClassification(config).eval()
with torch.no_grad():  # sharper logits than the 0.02-std init, so the top-5 order is not a near tie
    model.classifier.weight.normal_(0, 0.5)
model.save_pretrained(folder, safe_serialization=True)
(folder / "preprocessor_config.json").write_text(json.dumps({
    "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 64, "width": 64},
    "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}))
PY
)"
logged "$HOST_LOG" "$PYTHON" -c "$MAKE_MODEL" "$WORK/host/tiny-hf"
for fmt in onnx tflite; do
    logged "$HOST_LOG" "$PYTHON" -m vitedge.cli convert "$WORK/host/tiny-hf" --to "$fmt" \
        --out "$EXCHANGE/artifacts/$fmt-fp32" --overwrite --validation-samples 8
    grep -E '^(wrote|validation)' "$HOST_LOG" | tail -2 | sed 's/^/  /'
done

"$PYTHON" -c 'import importlib.metadata as m
for name in ("numpy", "pillow", "onnxruntime", "ai-edge-litert"):
    print(f"{name}=={m.version(name)}")' >"$EXCHANGE/constraints.txt"
echo "guest pins (the host's versions): $(tr '\n' ' ' <"$EXCHANGE/constraints.txt")"

# -- 5. in the arm64 chroot: install and predict ---------------------------------------------------------
step "guest: mount /proc only (onnxruntime segfaults under qemu when /sys is mounted too), DNS, CA certificates"
GUEST_LOG="$WORK/guest.log"  # also holds onnxruntime's cpuinfo complaints about the missing /sys: expected
: >"$GUEST_LOG"
mount_into_rootfs "$ROOTFS/proc" -t proc proc
mkdir -p "$CACHE/pip-cache"
mount_into_rootfs "$ROOTFS/root/.cache/pip" --bind "$CACHE/pip-cache"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
if [[ -z "$HOST_CA" ]]; then
    for candidate in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [[ -n "$candidate" && -f "$candidate" ]]; then HOST_CA="$candidate"; break; fi
    done
fi
[[ -n "$HOST_CA" ]] || die "no CA bundle found on this machine; set PI_CHECK_CA_BUNDLE"
cp -L "$HOST_CA" "$EXCHANGE/host-ca.pem"

guest() {  # run a command in the chroot with a clean environment (the host's pip settings stay out)
    local proxies=()
    local name
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        if [[ -n "${!name:-}" ]]; then proxies+=("$name=${!name}"); fi
    done
    chroot "$ROOTFS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/pi-check/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_CERT=/pi-check/host-ca.pem SSL_CERT_FILE=/pi-check/host-ca.pem PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_DEFAULT_TIMEOUT=120 PIP_ONLY_BINARY=:all: "${proxies[@]}" "$@"
}

step "guest: venv, pip install ${WHEEL_NAME}[onnx] (aarch64 wheels from PyPI)"
logged "$GUEST_LOG" guest python3 -m venv /pi-check/venv
logged "$GUEST_LOG" guest pip install --no-compile -c /pi-check/constraints.txt "/pi-check/wheels/${WHEEL_NAME}[onnx]"
step "guest: vitedge verify --json artifacts/onnx-fp32 (checksums, preprocessing parity, model parity; no torch)"
verdict_from "$WORK/guest-verify-onnx.json" "$GUEST_LOG" \
    guest sh -c 'cd /pi-check && vitedge verify artifacts/onnx-fp32 --json --threads 1'

step "guest: pip install ${WHEEL_NAME}[tflite]"
logged "$GUEST_LOG" guest pip install --no-compile -c /pi-check/constraints.txt "/pi-check/wheels/${WHEEL_NAME}[tflite]"
step "guest: vitedge verify --json artifacts/tflite-fp32"
verdict_from "$WORK/guest-verify-tflite.json" "$GUEST_LOG" \
    guest sh -c 'cd /pi-check && vitedge verify artifacts/tflite-fp32 --json --threads 1'
guest python -c 'import platform, importlib.metadata as m, sys
names = sorted(d.metadata["Name"].lower() for d in m.distributions())
heavy = [n for n in names if n in ("torch", "transformers", "tensorflow", "jax")]
print(f"guest venv: {platform.machine()}, Python {platform.python_version()}, {len(names)} packages:", " ".join(names))
sys.exit(f"heavy packages installed: {heavy}" if heavy else 0)'

# -- 6. the guest's verdicts ------------------------------------------------------------------------------
step "the guest's verdicts (aarch64, no torch): vitedge verify on each artifact"
"$PYTHON" "$ROOT/scripts/pi_check_verdicts.py" "$WORK/guest-verify-onnx.json" "$WORK/guest-verify-tflite.json" \
    --seconds "$((SECONDS - START))"
