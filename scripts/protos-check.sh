#!/usr/bin/env bash
# Fails when protocols/*.ts are not what protons generates from protocols/*.proto today
# (a .proto edited without `npm run protos`, or a generated file edited by hand).
set -euo pipefail
cd "$(dirname "$0")/.."

fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
protons --output "$fresh" protocols/*.proto

status=0
for proto in protocols/*.proto; do
  name=$(basename "$proto" .proto)
  if [ ! -f "protocols/$name.ts" ]; then
    echo "protocols/$name.ts is missing: run \`npm run protos\` and commit it" >&2
    status=1
  elif ! diff -u "protocols/$name.ts" "$fresh/$name.ts" >&2; then
    echo "protocols/$name.ts differs from what protons generates from $proto (diff above): run \`npm run protos\` and commit it" >&2
    status=1
  fi
done
for generated in protocols/*.ts; do
  name=$(basename "$generated" .ts)
  if [ ! -f "protocols/$name.proto" ]; then
    echo "$generated has no protocols/$name.proto it was generated from" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "protocols/*.ts match their .proto files"
exit "$status"
