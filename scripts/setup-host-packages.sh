#!/usr/bin/env bash
# Install the Debian package of every host command in scripts/host-packages that is missing, in
# one apt-get transaction. A command marked "image" cannot be installed by setup: if it is
# missing, say what to install by hand and stop.
#
# Before installing docker.io, the caller (scripts/setup) has written the daemon config
# (setup-docker.sh config), so that if the package's scripts start dockerd, it starts safe.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'host-packages: %s\n' "$*" >&2; }

missing_packages=()
while read -r command package _; do
    [[ -z $command || $command == \#* ]] && continue
    command -v "$command" >/dev/null 2>&1 && continue
    if [[ $package == image ]]; then
        say "ERROR: '$command' is missing; it ships with this kind of machine and setup cannot install it"
        exit 1
    fi
    [[ " ${missing_packages[*]} " == *" $package "* ]] || missing_packages+=("$package")
    say "'$command' is missing: package $package"
done < scripts/host-packages

if (( ${#missing_packages[@]} == 0 )); then
    say "every host command is there"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { say "ERROR: installing ${missing_packages[*]} needs root"; exit 1; }
say "installing ${missing_packages[*]}"
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_packages[@]}" >&2
say "installed ${missing_packages[*]}"
