#!/usr/bin/env bash
# Two squall hosts serving the chat example, sharing one Redis, behind
# nginx round-robin on http://127.0.0.1:8080/ — open it in two tabs (or two
# browsers): each page may land on a different host, and they still chat.
# Needs redis-server and nginx (apt-get install redis-server nginx).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
cargo build --release -p squall --manifest-path "$repo/Cargo.toml"
squall="$repo/target/release/squall"
"$squall" build "$here/../chat" >/dev/null

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly yes --dir "$(mktemp -d)" --daemonize no &
redis=$!
trap 'kill $redis $a $b 2>/dev/null; nginx -c "$here/nginx.conf" -s stop 2>/dev/null || true' EXIT
sleep 0.5
"$squall" serve "$here/squall.toml" --listen 127.0.0.1:8081 &
a=$!
"$squall" serve "$here/squall.toml" --listen 127.0.0.1:8082 &
b=$!
nginx -c "$here/nginx.conf"
echo "chat on http://127.0.0.1:8080/ (hosts on :8081 and :8082, Redis on :6390); Ctrl-C to stop"
wait $a $b
