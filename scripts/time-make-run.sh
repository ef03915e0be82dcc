#!/usr/bin/env bash
# Times `make run` from a fresh clone: clone SOURCE into a new directory, start `make run` there
# on PORT, poll /healthz until it answers, print the elapsed seconds, stop the server.
# A fresh pip/uv cache (unless KEEP_CACHE=1) stands for a machine that never installed anything.
# Usage: scripts/time-make-run.sh SOURCE_REPO [PORT] [TIMEOUT_SECONDS]
set -euo pipefail
source_repo=${1:?usage: $0 SOURCE_REPO [PORT] [TIMEOUT_SECONDS]}
port=${2:-8000}
limit=${3:-900}
work=$(mktemp -d /tmp/time-make-run.XXXXXX)
clone=$work/clone
git clone --quiet "$source_repo" "$clone"
# Older Makefiles hard-code the port; newer ones take PORT=.
sed -i "s/--port 8000\$/--port $port/" "$clone/Makefile"
if [ "${KEEP_CACHE:-0}" != 1 ]; then
    export PIP_CACHE_DIR=$work/pip-cache UV_CACHE_DIR=$work/uv-cache
fi
if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then
    echo "port $port is already in use" >&2
    exit 2
fi
start=$(date +%s.%N)
(cd "$clone" && exec setsid make run PORT="$port") >"$work/make-run.log" 2>&1 &
make_pid=$!
status=1
while kill -0 "$make_pid" 2>/dev/null; do
    if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" | grep -q 200; then
        status=0
        break
    fi
    if [ "$(echo "$(date +%s.%N) - $start > $limit" | bc)" = 1 ]; then
        break
    fi
    sleep 0.5
done
end=$(date +%s.%N)
# setsid made make the leader of its own process group: stop it and the server it started.
kill -- "-$make_pid" 2>/dev/null || true
wait "$make_pid" 2>/dev/null || true
if [ "$status" = 0 ]; then
    printf 'make run answered /healthz after %.1f s (clone %s, log %s)\n' \
        "$(echo "$end - $start" | bc)" "$clone" "$work/make-run.log"
else
    echo "make run did not answer /healthz (log $work/make-run.log)" >&2
    tail -20 "$work/make-run.log" >&2
    exit 1
fi
