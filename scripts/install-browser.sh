#!/usr/bin/env bash
# Make sure a Chromium the browser tests can drive is on the machine (Debian's package; browsers are
# never downloaded by Playwright here). Idempotent: does nothing when `chromium` is already on PATH.
# Installs only as root (apt-get); otherwise it says what to run. Prints the browser's path.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium (apt-get)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
  else
    echo "chromium is missing: run 'sudo apt-get install -y chromium' (needed by the browser tests)" >&2
    exit 1
  fi
fi
command -v chromium
