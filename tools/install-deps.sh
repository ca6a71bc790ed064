#!/usr/bin/env bash
# Installs everything Arca needs to build, run and test on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(gcc clang libclang-rt-14-dev meson ninja-build pkg-config bc
	libgmime-3.0-dev libglib2.0-dev libevent-dev libssl-dev libsodium-dev libsqlite3-dev
	libzstd-dev libjansson-dev libcmocka-dev libisal-dev
	python3 python3-pytest notmuch time ca-certificates curl dovecot-imapd isync)
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages (run as root): ${missing[*]}" >&2
		exit 1
	fi
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
