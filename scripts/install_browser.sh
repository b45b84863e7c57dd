#!/usr/bin/env bash
# Make sure a headless Chromium is available for tests/test_atlas_browser.py.
# Installs the Debian packages chromium and chromium-driver with apt-get when no browser is
# found (as root, or through passwordless sudo). Prints the browser path; exit code 1 when no
# browser can be installed (the browser test then skips and says why).
set -euo pipefail

find_browser() {
    local name
    for name in "${MACO_TF_CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
        if [ -n "$name" ] && command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if browser="$(find_browser)"; then
    echo "$browser"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install_browser.sh: no Chromium found and not root (nor passwordless sudo): cannot" \
        "install chromium chromium-driver" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no Chromium found and no apt-get to install it" >&2
    exit 1
fi

echo "install_browser.sh: installing chromium chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >&2; then
    "${as_root[@]}" apt-get update >&2 || true
    "${as_root[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >&2 || {
        echo "install_browser.sh: apt-get could not install chromium chromium-driver" >&2
        exit 1
    }
fi

if browser="$(find_browser)"; then
    echo "$browser"
    exit 0
fi
echo "install_browser.sh: chromium was installed but is not on PATH" >&2
exit 1
