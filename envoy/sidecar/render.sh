#!/bin/sh
# Render envoy.yaml.tmpl and sds-token.yaml from SRC_DIR into OUT_DIR (POSIX sh + sed, so it runs
# in the Envoy image at container start; Envoy itself does not expand variables).
#
# Usage: render.sh SRC_DIR OUT_DIR
# Environment (defaults are the in-Pod values of pod.yaml):
#   KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT   set by the kubelet in every container
#   KPROXY_LISTEN_PORT=8001  KPROXY_ADMIN_PORT=9901
#   KPROXY_WASM=/wasm/plugin.wasm
#   KPROXY_SA_DIR=/var/run/secrets/kubernetes.io/serviceaccount
#   KPROXY_APISERVER_NAME=kubernetes.default.svc        SNI and required DNS SAN
# Writes OUT_DIR/envoy.yaml and OUT_DIR/sds-token.yaml; fails on a missing variable or a value
# containing a character that could break the YAML or the sed expression.
set -eu

src=${1:?usage: render.sh SRC_DIR OUT_DIR}
out=${2:?usage: render.sh SRC_DIR OUT_DIR}

host=${KUBERNETES_SERVICE_HOST:?KUBERNETES_SERVICE_HOST is not set}
port=${KUBERNETES_SERVICE_PORT:?KUBERNETES_SERVICE_PORT is not set}
listen=${KPROXY_LISTEN_PORT:-8001}
admin=${KPROXY_ADMIN_PORT:-9901}
wasm=${KPROXY_WASM:-/wasm/plugin.wasm}
sa_dir=${KPROXY_SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
name=${KPROXY_APISERVER_NAME:-kubernetes.default.svc}

for v in "$host" "$port" "$listen" "$admin" "$wasm" "$sa_dir" "$name" "$out"; do
  case $v in
    *[\|\&\\\"\'\ ]* | "")
      echo "render.sh: refusing value '$v' (empty, or contains | & \\ quotes or spaces)" >&2
      exit 1
      ;;
  esac
done
for v in "$port" "$listen" "$admin"; do
  case $v in
    *[!0-9]*) echo "render.sh: port '$v' is not a number" >&2; exit 1 ;;
  esac
done

# The Host header client-go sends for an in-cluster config: net.JoinHostPort(host, port).
case $host in
  *:*) authority="[$host]:$port" ;;
  *) authority="$host:$port" ;;
esac

mkdir -p "$out"
render() {
  sed -e "s|@@LISTEN_PORT@@|$listen|g" \
      -e "s|@@ADMIN_PORT@@|$admin|g" \
      -e "s|@@WASM@@|$wasm|g" \
      -e "s|@@APISERVER_ADDRESS@@|$host|g" \
      -e "s|@@APISERVER_PORT@@|$port|g" \
      -e "s|@@APISERVER_AUTHORITY@@|$authority|g" \
      -e "s|@@APISERVER_NAME@@|$name|g" \
      -e "s|@@SA_DIR@@|$sa_dir|g" \
      -e "s|@@SDS_FILE@@|$out/sds-token.yaml|g" \
      "$1" > "$2.tmp"
  if grep -n '@@[A-Z_]*@@' "$2.tmp" >&2; then
    echo "render.sh: unfilled placeholder in $2" >&2
    exit 1
  fi
  mv "$2.tmp" "$2"
}
render "$src/sds-token.yaml" "$out/sds-token.yaml"
render "$src/envoy.yaml.tmpl" "$out/envoy.yaml"
