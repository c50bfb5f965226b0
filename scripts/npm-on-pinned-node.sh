#!/usr/bin/env bash
# Runs npm on the project's pinned Node (the npm package `node`, version from package-lock.json)
# rather than on the system's: the install then checks every package's `engines` against the Node
# that will run it, so a system Node 20 gives no EBADENGINE warnings for packages needing Node 22+.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p "require('./package-lock.json').packages['node_modules/node'].version")
# npm exec puts that Node first on PATH; the inner npm (a `#!/usr/bin/env node` script) runs on it.
exec npm exec --yes --package="node@${version}" -- npm "$@"
