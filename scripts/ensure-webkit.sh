#!/usr/bin/env bash
# The compat matrix drives Debian's WebKitGTK MiniBrowser through WebKitWebDriver (webkit2gtk-driver,
# which pulls in libwebkit2gtk-4.1-0 with the MiniBrowser) under Xvfb: MiniBrowser needs an X display.
set -euo pipefail
minibrowser=/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser
if [ -x /usr/bin/WebKitWebDriver ] && [ -x "$minibrowser" ] && [ -x /usr/bin/Xvfb ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "compat: WebKitWebDriver, $minibrowser or Xvfb is missing; install them with: sudo apt-get install -y webkit2gtk-driver xvfb" >&2
  exit 1
fi
echo "compat: installing Debian's webkit2gtk-driver and xvfb (apt-get) ..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq webkit2gtk-driver xvfb >/dev/null
dpkg-query -W webkit2gtk-driver xvfb >&2
