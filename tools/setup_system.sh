#!/usr/bin/env bash
# The Debian packages the PDF report needs (tools/report.py), installed when missing:
#   chromium       prints the report to PDF (nbconvert's webpdf, through Playwright)
#   libjs-mathjax  renders the report's math offline (pulls in fonts-mathjax)
# Quick and silent when they are installed. As root it runs `apt-get update` once and
# installs what is missing; otherwise it prints the command to run and exits 0, so the rest
# of the set-up (the venv, the notebooks) still works -- `make report` then says what is missing.
set -euo pipefail

packages=(chromium libjs-mathjax)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "warning: not a Debian system: the report needs a Chromium (set FLOWS_CHROMIUM to its" \
         "executable) and MathJax 2.7 (set FLOWS_MATHJAX to its MathJax.js)" >&2
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "warning: the report needs these Debian packages: ${missing[*]}; install them with" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 0
fi

echo "installing ${missing[*]} (for the PDF report)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"
