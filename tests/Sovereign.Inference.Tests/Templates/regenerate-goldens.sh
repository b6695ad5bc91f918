#!/usr/bin/env bash
# Regenerates Goldens/*.txt with @huggingface/jinja (an independent renderer). Needs node and npm; the C# tests
# only read the committed goldens, so CI does not need either.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --silent
node render-goldens.mjs
