#!/usr/bin/env bash
# Installs the official MCP clients the client tests drive, pinned, into DIR:
#   DIR/venv          Python SDK `mcp` (requirements.txt)
#   DIR/node_modules  MCP Inspector, the conformance suite and Node 22 (package-lock.json)
# Idempotent: reinstalls only when the pins change. Needs python3 (with venv) and npm; on
# Debian it installs them when missing (as root, or with sudo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: setup.sh DIR}
mkdir -p "$dir"

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null && $sudo true 2>/dev/null; then
        $sudo apt-get update -q >&2
        $sudo apt-get install -y -q "${missing[@]}" >&2
    else
        echo "setup.sh: the client tests need ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }

python_pins=$(stamp "$here/requirements.txt")
if [ "$(cat "$dir/venv.stamp" 2>/dev/null)" != "$python_pins" ]; then
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$python_pins" > "$dir/venv.stamp"
fi

node_pins=$(stamp "$here/package.json" "$here/package-lock.json")
if [ "$(cat "$dir/node.stamp" 2>/dev/null)" != "$node_pins" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-fund --no-audit --loglevel=error --engine-strict=false)
    echo "$node_pins" > "$dir/node.stamp"
fi
