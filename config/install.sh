#!/usr/bin/env bash
# Installs aitbc-mesh on this host from a built checkout (run `npm run setup` in the checkout first).
# Run as root; running it again upgrades in place and keeps configs, identity and data.
#
#   sudo bash config/install.sh
#
# Installs:
#   $INSTALL_DIR (default /opt/aitbc-mesh)  the built program with its runtime dependencies and
#                                           the pinned Node.js 24 (node_modules/.bin/node)
#   $BIN_DIR/aitbc-mesh (default /usr/local/bin)  the CLI, started on that Node.js
#   /etc/systemd/system/aitbc-mesh.service  the hardened unit (config/aitbc-mesh.service)
#   /etc/aitbc/mesh.env                     environment file (from config/aitbc-mesh.env.example; an existing one is kept)
#   /var/lib/aitbc/mesh                     the daemon's data folder, owned by user aitbc
# and creates the system user and group aitbc if they do not exist.
set -euo pipefail

SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
INSTALL_DIR=${INSTALL_DIR:-/opt/aitbc-mesh}
BIN_DIR=${BIN_DIR:-/usr/local/bin}
# These are the paths the unit, the CLI defaults and the README use.
MESH_USER=aitbc
MESH_GROUP=aitbc
ETC_DIR=/etc/aitbc
STATE_DIR=/var/lib/aitbc/mesh
UNIT_FILE=/etc/systemd/system/aitbc-mesh.service

fail () { echo "install.sh: $*" >&2; exit 1; }
say () { echo "install.sh: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (sudo bash $0): it creates a system user and writes to $INSTALL_DIR, $BIN_DIR, /etc and /var/lib"
[ -f "$SOURCE_DIR/package.json" ] || fail "$SOURCE_DIR is not an aitbc-mesh checkout (no package.json); set SOURCE_DIR"
[ -f "$SOURCE_DIR/dist/src/cli/main.js" ] && [ -x "$SOURCE_DIR/node_modules/.bin/node" ] \
  || fail "$SOURCE_DIR is not built: run \`npm run setup\` in it first (it installs the pinned Node.js and builds dist/)"
command -v npm >/dev/null 2>&1 || fail "npm is needed to drop the development dependencies; install npm"

# The service user: no login, no home of its own beyond the data folder.
if ! getent group "$MESH_GROUP" >/dev/null; then
  groupadd --system "$MESH_GROUP"
  say "created group $MESH_GROUP"
fi
if ! id -u "$MESH_USER" >/dev/null 2>&1; then
  nologin=$(command -v nologin || echo /usr/sbin/nologin)
  useradd --system --gid "$MESH_GROUP" --home-dir /var/lib/aitbc --no-create-home --shell "$nologin" \
    --comment "aitbc-mesh daemon" "$MESH_USER"
  say "created system user $MESH_USER"
fi

# The program: copied from the checkout into a fresh folder, development dependencies removed,
# then swapped in, so an upgrade never leaves a half-copied tree. Owned by root: the service
# user can run it but not change it.
staging="$INSTALL_DIR.new.$$"
rm -rf "$staging"
mkdir -p "$staging"
trap 'rm -rf "$staging"' EXIT
for item in package.json package-lock.json README.md dist protocols config node_modules; do
  [ -e "$SOURCE_DIR/$item" ] || fail "$SOURCE_DIR/$item is missing"
  cp -a "$SOURCE_DIR/$item" "$staging/"
done
(cd "$staging" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
"$staging/node_modules/.bin/node" --version >/dev/null || fail "the pinned Node.js in $staging/node_modules/.bin/node does not run on this host"
chown -R root:root "$staging"
chmod -R u+rwX,go+rX,go-w "$staging"
if [ -e "$INSTALL_DIR" ]; then
  rm -rf "$INSTALL_DIR.old"
  mv "$INSTALL_DIR" "$INSTALL_DIR.old"
  mv "$staging" "$INSTALL_DIR"
  rm -rf "$INSTALL_DIR.old"
  say "upgraded $INSTALL_DIR"
else
  mkdir -p "$(dirname "$INSTALL_DIR")"
  mv "$staging" "$INSTALL_DIR"
  say "installed $INSTALL_DIR"
fi
trap - EXIT

# The CLI on the pinned runtime (the system node may be older than the program needs).
mkdir -p "$BIN_DIR"
cat > "$BIN_DIR/aitbc-mesh.new" <<EOF
#!/bin/sh
# aitbc-mesh CLI on its pinned Node.js runtime (installed by $INSTALL_DIR/config/install.sh).
exec $INSTALL_DIR/node_modules/.bin/node $INSTALL_DIR/dist/src/cli/main.js "\$@"
EOF
chmod 0755 "$BIN_DIR/aitbc-mesh.new"
mv "$BIN_DIR/aitbc-mesh.new" "$BIN_DIR/aitbc-mesh"
say "installed $BIN_DIR/aitbc-mesh"

# The unit, with the program's paths if it is not in /opt/aitbc-mesh.
mkdir -p "$(dirname "$UNIT_FILE")"
sed "s|/opt/aitbc-mesh|$INSTALL_DIR|g" "$SOURCE_DIR/config/aitbc-mesh.service" > "$UNIT_FILE.new"
chmod 0644 "$UNIT_FILE.new"
mv "$UNIT_FILE.new" "$UNIT_FILE"
say "installed $UNIT_FILE"

# Config folder: readable by the group (the daemon and operators); files in it stay root's.
if [ ! -d "$ETC_DIR" ]; then
  install -d -o root -g "$MESH_GROUP" -m 0750 "$ETC_DIR"
  say "created $ETC_DIR (root:$MESH_GROUP, 0750)"
elif ! runuser -u "$MESH_USER" -- test -r "$ETC_DIR" -a -x "$ETC_DIR"; then
  fail "$ETC_DIR exists but user $MESH_USER cannot read it; give it read and search permission (e.g. chgrp $MESH_GROUP $ETC_DIR && chmod g+rx $ETC_DIR)"
fi
if [ ! -e "$ETC_DIR/mesh.env" ]; then
  install -o root -g "$MESH_GROUP" -m 0640 "$SOURCE_DIR/config/aitbc-mesh.env.example" "$ETC_DIR/mesh.env"
  say "installed $ETC_DIR/mesh.env (root:$MESH_GROUP, 0640)"
else
  say "kept $ETC_DIR/mesh.env"
fi

# Data folder: the service user's; `aitbc-mesh init --dir` puts the identity here.
mkdir -p "$(dirname "$STATE_DIR")"
install -d -o "$MESH_USER" -g "$MESH_GROUP" -m 0750 "$STATE_DIR"

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if systemctl is-active --quiet aitbc-mesh; then
    say "aitbc-mesh is running the previous version: systemctl restart aitbc-mesh"
  fi
else
  say "systemd is not running on this host: the unit is installed but cannot be started here"
fi

if [ ! -e "$ETC_DIR/mesh.yaml" ]; then
  cat <<EOF

Next, create this node's identity and config (README: Install), e.g. for the genesis node:
  sudo aitbc-mesh init --name aitbc --role genesis --dir $STATE_DIR --config $ETC_DIR/mesh.yaml --control-socket /run/aitbc/mesh.sock
EOF
fi
