#!/usr/bin/env bash
# Creates the example cluster's certificate authority and one certificate per member (gateways and nodes
# authenticate each other with them: mutual TLS between silos; a member without one cannot join), with the sovereign
# CLI in the image. Writes ./tls/ca (the CA; its key stays here, never in a container) and ./tls/<member>/.
# Run it again to rotate the members' certificates (the CA is kept): each member reads its files again when they change
# and uses the new pair from its next connection on (event 3016), no restart (docs/operator-guide.md, "Rotate a member's
# certificate").
set -euo pipefail
cd "$(dirname "$0")"
image="${SOVEREIGN_IMAGE:-sovereign:dev}"
cluster_id="${SOVEREIGN_CLUSTER_ID:-sovereign-example}"
sovereign() { docker run --rm --user 0 -v "$(pwd)/tls:/tls" "$image" "$@"; }
mkdir -p tls
if [[ ! -e tls/ca/cluster-ca-key.pem ]]; then
  sovereign cluster ca init --data-dir /tls/ca --cluster-id "$cluster_id"
fi
for member in gateway-th gateway-sg; do
  sovereign cluster cert issue --data-dir /tls/ca --role gateway --node-id "$member" --out "/tls/$member"
done
for member in node-th-1 node-th-2 node-sg-1; do
  sovereign cluster cert issue --data-dir /tls/ca --role node --node-id "$member" --out "/tls/$member"
done
# The members' files belong to the containers' user (uid 1654); the CA stays root's.
docker run --rm --user 0 -v "$(pwd)/tls:/tls" --entrypoint chown "$image" -R 1654:1654 /tls/gateway-th /tls/gateway-sg /tls/node-th-1 /tls/node-th-2 /tls/node-sg-1
echo "wrote $(pwd)/tls: ca/ (keep cluster-ca-key.pem offline) and one folder per member"
