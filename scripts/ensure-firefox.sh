#!/usr/bin/env bash
# The compat matrix drives Debian's firefox-esr over WebDriver BiDi; test tools cannot download their own browser here.
set -euo pipefail
if [ -x /usr/bin/firefox-esr ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "compat: /usr/bin/firefox-esr is missing; install it with: sudo apt-get install -y firefox-esr" >&2
  exit 1
fi
echo "compat: installing Debian's firefox-esr (apt-get) ..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr >/dev/null
/usr/bin/firefox-esr --version >&2
