#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (no browser download from a test tool).
set -euo pipefail
for candidate in "${KTRDR_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then exit 0; fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Chromium for the browser tests (apt-get install chromium)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "Chromium is needed for the browser tests: install it (e.g. sudo apt-get install chromium)" >&2
  echo "or point KTRDR_CHROMIUM at a Chromium binary." >&2
  exit 1
fi
