#!/usr/bin/env bash
# One-time (and idempotent) setup for a fresh machine:
#   1. find Python 3.10 (Rasa 3.6 refuses 3.11+),
#   2. build .venv and install the pinned lock (skipped when the lock is unchanged),
#   3. make sure a Redis server answers (start one, installing Debian's package if missing),
#   4. write .env with freshly generated secrets if there is none (never committed),
#   5. make sure Debian's chromium is there for the staff console's browser test,
#   6. fetch the web chat widget (npm pack, pinned version and integrity: channels/web/widget.pin).
# Re-running it when nothing changed takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="$ROOT/.venv"

say() { printf '[setup] %s\n' "$*" >&2; }

find_python310() {
    local candidates=()
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
    if command -v pyenv >/dev/null 2>&1; then
        local root; root=$(pyenv root)
        for d in "$root"/versions/3.10*; do [ -x "$d/bin/python" ] && candidates+=("$d/bin/python"); done
    fi
    for d in "$HOME"/.pyenv/versions/3.10* /root/.pyenv/versions/3.10*; do
        [ -x "$d/bin/python" ] && candidates+=("$d/bin/python")
    done
    for c in "${candidates[@]}"; do
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

# --- 1 + 2: virtual environment --------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    if ! PY=$(find_python310); then
        echo "patientbot needs Python 3.10 (Rasa 3.6 does not run on 3.11+): set PYTHON=/path/to/python3.10, put python3.10 on PATH, or 'pyenv install 3.10'." >&2
        exit 1
    fi
    say "creating .venv with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

lock_sum=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    say "installing the pinned dependencies (requirements.lock); the first time takes a few minutes"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip==24.3.1" "setuptools==70.3.0" "wheel==0.45.1"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    "$VENV/bin/python" -m pip check >&2
    echo "$lock_sum" > "$VENV/.lock-sha256"
fi

# --- 3: Redis ---------------------------------------------------------------------------------
redis_url_port() { "$VENV/bin/python" - <<'PY'
import os
from urllib.parse import urlparse
u = urlparse(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
print(u.hostname or "127.0.0.1", u.port or 6379)
PY
}
read -r RHOST RPORT < <(redis_url_port)
redis_answers() {
    "$VENV/bin/python" -c "import redis,sys; redis.Redis(host='$RHOST', port=$RPORT, socket_timeout=2).ping()" 2>/dev/null
}
if ! redis_answers; then
    if [ "$RHOST" != "127.0.0.1" ] && [ "$RHOST" != "localhost" ]; then
        echo "Redis at $RHOST:$RPORT does not answer; start it or fix REDIS_URL." >&2; exit 1
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        say "installing Debian's redis-server"
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
    fi
    say "starting redis-server on 127.0.0.1:$RPORT"
    mkdir -p "$ROOT/.run"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no \
        --dir "$ROOT/.run" --logfile "$ROOT/.run/redis.log" --pidfile "$ROOT/.run/redis.pid"
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
    redis_answers || { echo "redis-server did not come up; see .run/redis.log" >&2; exit 1; }
fi

# --- 4: secrets -------------------------------------------------------------------------------
if [ ! -f .env ]; then
    say "writing .env with generated secrets (ignored by git)"
    "$VENV/bin/python" -m bot.config --write-env .env
fi
# --- 5: chromium for the staff console's browser test (playwright drives it; no browser download) ---
if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# --- 6: the web chat widget the gateway serves (channels/web/widget_bundle.py) ----------------
# npm fetches the pinned tarball; a tarball or file whose hash is not the pinned one stops the
# setup here. Skipped (in well under a second) when the verified file is already there.
if ! command -v npm >/dev/null 2>&1; then
    say "installing Debian's npm (to fetch the web chat widget)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
fi
if ! "$VENV/bin/python" -m channels.web.widget_bundle fetch >&2; then
    echo "setup failed: the web chat widget could not be fetched and verified (see above)" >&2
    exit 1
fi
say "ready"
