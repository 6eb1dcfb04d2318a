#!/usr/bin/env bash
# Development certificates for the single-host platform: a CA, the gateway's server certificate
# and one client certificate per company (tenant). Not for production: use cert-manager or your PKI.
#
#   deploy/compose/make-dev-certs.sh [tenant...]     # default tenants: acme globex
#
# Writes deploy/compose/certs/{ca.crt,ca.key,gateway.crt,gateway.key,<tenant>.crt,<tenant>.key}.
# The client certificate's CN is the tenant id the gateway maps the identity to.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/certs"
mkdir -p "$dir"
cd "$dir"
tenants=("$@")
[ ${#tenants[@]} -gt 0 ] || tenants=(acme globex)
days=825

if [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
    -days "$days" -subj "/O=fedmm development/CN=fedmm development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

issue() {
  local name="$1" cn="$2" eku="$3" san="$4"
  [ -f "$name.crt" ] && openssl verify -CAfile ca.crt "$name.crt" >/dev/null 2>&1 && return 0
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "/O=fedmm/CN=$cn" 2>/dev/null
  local ext
  ext="$(mktemp)"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s\n' "$eku" "$san" >"$ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days "$days" -extfile "$ext" 2>/dev/null
  rm -f "$name.csr" "$ext"
}

issue gateway gateway serverAuth,clientAuth "subjectAltName=DNS:gateway,DNS:localhost,IP:127.0.0.1"
for t in "${tenants[@]}"; do issue "$t" "$t" clientAuth ""; done
# Bind-mounted into containers that run as uid 10001, which must read them: development only.
chmod 0644 ./*.crt ./*.key
echo "certificates in $dir: ca.crt, gateway.{crt,key}, ${tenants[*]/%/.{crt,key\}}"
