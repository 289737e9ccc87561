#!/usr/bin/env bash
# Installs the Debian 12 packages that tokensign's build, tests and quickstart need.
# Idempotent: runs apt-get (update + install) only when a package is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl
  libssl-dev openssl
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev libboost-dev
  softhsm2 opensc p11-kit p11-kit-modules libp11-kit-dev libp11-dev libengine-pkcs11-openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev prometheus-cpp-dev
  python3 python3-jwt python3-cryptography python3-grpcio python3-protobuf
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
