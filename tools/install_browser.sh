#!/usr/bin/env bash
# Install the browser the `ui` tests drive: Debian's chromium and its matching chromedriver (/usr/bin/chromium,
# /usr/bin/chromedriver). Needs root (apt-get); prints why and exits 3 when it cannot install. Idempotent.
#   bash tools/install_browser.sh
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver are already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "cannot install chromium: not root (run: sudo apt-get install -y chromium chromium-driver)" >&2
    exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install chromium: no apt-get on this system (install Chromium and chromedriver by hand)" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium chromium-driver
/usr/bin/chromium --version
/usr/bin/chromedriver --version
