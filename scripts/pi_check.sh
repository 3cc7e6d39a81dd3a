#!/usr/bin/env bash
# pi-check: prove that vitedge runs on Raspberry Pi OS (Debian bookworm, arm64) without a Pi.
#
# Builds a Debian bookworm arm64 root file system with debootstrap (cached as a tarball), runs it under
# qemu-user-static, installs the vitedge wheel built here plus PyPI's aarch64 wheels of numpy, pillow,
# onnxruntime and ai-edge-litert (the versions this machine has, so only the architecture differs), runs
# `vitedge predict --json` on tiny ONNX and TFLite fp32 artifacts made here, and compares the arm64 results
# with this machine's: the same top-5 labels, scores within --tolerance. Prints PASS or FAIL per image and
# exits non-zero on any mismatch.
#
# Needs root (debootstrap, chroot, mount), Linux, and network access to a Debian mirror and PyPI.
# Run `make pi-check`, or scripts/pi_check.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PI_CHECK_CACHE:-$ROOT/.pi-check}"
MIRROR="${PI_CHECK_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
TOLERANCE="${PI_CHECK_TOLERANCE:-1e-4}"
SUITE=bookworm
ARCH=arm64
FRESH=0
KEEP=0
DRY_RUN=0
HOST_CA="${PI_CHECK_CA_BUNDLE:-}"

usage() {
    cat <<EOF
usage: scripts/pi_check.sh [--cache DIR] [--mirror URL] [--tolerance X] [--fresh] [--keep] [--dry-run]

Runs vitedge on Debian $SUITE $ARCH (Raspberry Pi OS 64-bit) under qemu and compares its predictions with
this machine's.

  --cache DIR      where the root file system tarball, pip's downloads and the work folder live
                   (default: .pi-check/ in the repository; env PI_CHECK_CACHE)
  --mirror URL     Debian mirror for debootstrap (default: $MIRROR; env PI_CHECK_MIRROR)
  --tolerance X    largest allowed difference of a softmax score (default: $TOLERANCE; env PI_CHECK_TOLERANCE)
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
        --tolerance) [[ $# -ge 2 ]] || die "--tolerance needs a number"; TOLERANCE="$2"; shift 2 ;;
        --tolerance=*) TOLERANCE="${1#*=}"; shift ;;
        --fresh) FRESH=1; shift ;;
        --keep) KEEP=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ "$TOLERANCE" =~ ^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$ ]] || die "--tolerance must be a number, got '$TOLERANCE'"
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
    echo "  tolerance:  $TOLERANCE"
    for tool in debootstrap qemu-aarch64-static update-binfmts; do
        printf '  %-20s %s\n' "$tool" "$(command -v "$tool" || echo 'absent: will be installed with apt-get')"
    done
    echo "  steps: host tools -> binfmt_misc + qemu-aarch64 -> rootfs (debootstrap or cache) -> wheel ->"
    echo "         tiny ONNX + TFLite fp32 artifacts -> host predictions -> chroot: venv, pip install"
    echo "         vitedge[onnx] then [tflite] -> arm64 predictions -> compare"
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

json_from() {  # json_from OUT LOG COMMAND...: the command's stdout (JSON) goes to OUT, its stderr to LOG
    local out="$1" log="$2"
    shift 2
    if ! "$@" >"$out" 2>>"$log"; then
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

# -- 4. on the host: the wheel, tiny artifacts, images, predictions ----------------------------------------
step "host: build the vitedge wheel (no dependencies)"
EXCHANGE="$ROOTFS/pi-check"  # what the guest sees as /pi-check
mkdir -p "$EXCHANGE/wheels" "$WORK/host"
HOST_LOG="$WORK/host.log"
: >"$HOST_LOG"
logged "$HOST_LOG" "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$EXCHANGE/wheels" "$ROOT"
WHEEL_PATHS=("$EXCHANGE"/wheels/vitedge-*.whl)
WHEEL_NAME="$(basename "${WHEEL_PATHS[0]}")"
echo "$WHEEL_NAME"

step "host: a tiny ViT, converted to ONNX fp32 and TFLite fp32; test images"
MAKE_MODEL="$(cat <<'PY'
import json, shutil, sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification

folder, images, data = (Path(arg) for arg in sys.argv[1:])
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
images.mkdir(parents=True, exist_ok=True)
for path in sorted(data.iterdir()):
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        shutil.copy(path, images / path.name)
rng = np.random.default_rng(0)
Image.fromarray(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)).save(images / "noise.png")
Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1))).save(images / "gradient_gray.png")
photo = Image.open(data / "astronaut.jpg").convert("RGBA").resize((300, 17))
photo.save(images / "wide_rgba.png")
PY
)"
logged "$HOST_LOG" "$PYTHON" -c "$MAKE_MODEL" "$WORK/host/tiny-hf" "$EXCHANGE/images" "$ROOT/tests/data"
for fmt in onnx tflite; do
    logged "$HOST_LOG" "$PYTHON" -m vitedge.cli convert "$WORK/host/tiny-hf" --to "$fmt" \
        --out "$EXCHANGE/artifacts/$fmt-fp32" --overwrite --validation-samples 8
    grep -E '^(wrote|validation)' "$HOST_LOG" | tail -2 | sed 's/^/  /'
done

step "host: predictions ($HOST_MACHINE)"
host_predict() (  # the same relative paths as in the guest, so the results name the same images
    cd "$EXCHANGE" && "$PYTHON" -m vitedge.cli predict "artifacts/$1-fp32" images --json --top-k 5 --threads 1
)
for fmt in onnx tflite; do
    json_from "$WORK/host/$fmt.json" "$HOST_LOG" host_predict "$fmt"
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
json_from "$WORK/guest-onnx.json" "$GUEST_LOG" \
    guest sh -c 'cd /pi-check && vitedge predict artifacts/onnx-fp32 images --json --top-k 5 --threads 1'

step "guest: pip install ${WHEEL_NAME}[tflite]"
logged "$GUEST_LOG" guest pip install --no-compile -c /pi-check/constraints.txt "/pi-check/wheels/${WHEEL_NAME}[tflite]"
json_from "$WORK/guest-tflite.json" "$GUEST_LOG" \
    guest sh -c 'cd /pi-check && vitedge predict artifacts/tflite-fp32 images --json --top-k 5 --threads 1'
guest python -c 'import platform, importlib.metadata as m, sys
names = sorted(d.metadata["Name"].lower() for d in m.distributions())
heavy = [n for n in names if n in ("torch", "transformers", "tensorflow", "jax")]
print(f"guest venv: {platform.machine()}, Python {platform.python_version()}, {len(names)} packages:", " ".join(names))
sys.exit(f"heavy packages installed: {heavy}" if heavy else 0)'

# -- 6. compare ------------------------------------------------------------------------------------------
step "compare host ($HOST_MACHINE) with guest (aarch64)"
"$PYTHON" - "$WORK" "$TOLERANCE" "$((SECONDS - START))" <<'PY'
import json, sys
from pathlib import Path

work, tolerance, seconds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
failures, rows = 0, []
for fmt in ("onnx", "tflite"):
    host = json.loads((work / "host" / f"{fmt}.json").read_text())
    guest = json.loads((work / f"guest-{fmt}.json").read_text())
    if [r["image"] for r in host] != [r["image"] for r in guest]:
        print(f"FAIL {fmt}: different images: host {[r['image'] for r in host]}, guest {[r['image'] for r in guest]}")
        failures += 1
        continue
    for h, g in zip(host, guest):
        if "error" in h or "error" in g:
            ok = h.get("error") == g.get("error")
            rows.append((fmt, h["image"], h.get("error", "-")[:30], g.get("error", "-")[:30], "-", ok))
            failures += not ok
            continue
        hp, gp = h["predictions"], g["predictions"]
        diff = max(abs(a["score"] - b["score"]) for a, b in zip(hp, gp))
        same_labels = [p["label"] for p in hp] == [p["label"] for p in gp]
        # a swap of two classes whose scores tie within the tolerance is not a mismatch
        ties_only = all(a["label"] == b["label"] or abs(a["score"] - b["score"]) <= tolerance for a, b in zip(hp, gp))
        ok = len(hp) == len(gp) == 5 and (same_labels or ties_only) and diff <= tolerance
        failures += not ok
        rows.append((fmt, h["image"], f"{hp[0]['label']} {hp[0]['score']:.6f}", f"{gp[0]['label']} {gp[0]['score']:.6f}",
                     f"{diff:.1e}", ok))
header = ("format", "image", "host top-1", "arm64 top-1", "max |d score| top-5", "")
widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
print("  ".join(str(c).ljust(w) for c, w in zip(header, widths)))
for row in rows:
    print("  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)) + "  " + ("PASS" if row[5] else "FAIL"))
verdict = "PASS" if failures == 0 else "FAIL"
print(f"\npi-check {verdict}: {len(rows) - failures}/{len(rows)} predictions match "
      f"(same top-5 labels, scores within {tolerance:g}) on Debian bookworm arm64 under qemu; {seconds} s")
sys.exit(0 if failures == 0 else 1)
PY
