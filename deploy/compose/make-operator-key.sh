#!/usr/bin/env bash
# Creates the operator's signing key (ECDSA P-256, PKCS#8 PEM) that every member of the example cluster shares.
# Keep a copy offline: it signs node credentials and audit checkpoints; auditors get only its public half
# (`sovereign audit public-key`). The containers run as uid 1654 and must be able to read it.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -e operator-key.pem ]]; then
  echo "operator-key.pem exists; not replacing it (a new key would not verify old checkpoints)." >&2
  exit 1
fi
umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out operator-key.pem
echo "wrote $(pwd)/operator-key.pem (mode 600)"
# Readable by the containers' user only (never world-readable).
if ! chown 1654:1654 operator-key.pem 2>/dev/null; then
  echo "now run: sudo chown 1654:1654 $(pwd)/operator-key.pem   (the containers' user must read it)" >&2
fi
