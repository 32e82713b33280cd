#!/usr/bin/env bash
# Install the system packages the test-suite needs (Debian/Ubuntu, apt-get):
# PostgreSQL and MariaDB servers + clients for the throwaway test servers (tests/support/servers/),
# zip/unzip, util-linux (runuser, setpriv), script (bsdutils: drives `age -p` through a
# pseudo-terminal), age/age-keygen (the reference tool the age format is tested against) and
# chromium (the browser Playwright drives through the dashboard's tests).
#
# Only what is missing is installed; when everything is present this is a no-op that runs in
# a few milliseconds.  Package installation never starts the system database services
# (a temporary /usr/sbin/policy-rc.d denies it).  It does not create the Python venv.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# Server binaries usually live outside PATH (/usr/sbin, /usr/lib/postgresql/<ver>/bin).
have_sbin() { have "$1" || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]; }

have_pg_server() {
    local f
    for f in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$f" ]] && return 0
    done
    return 1
}

missing=()
have_pg_server || missing+=(postgresql)
{ have psql && have pg_dump; } || missing+=(postgresql-client)
{ { have_sbin mariadbd || have_sbin mysqld; } &&
    { have_sbin mariadb-install-db || have_sbin mysql_install_db; }; } ||
    missing+=(mariadb-server)
{ { have mysql || have mariadb; } && { have mysqldump || have mariadb-dump; }; } ||
    missing+=(mariadb-client)
have unzip || missing+=(unzip)
have zip || missing+=(zip)
{ have_sbin runuser && have_sbin setpriv; } || missing+=(util-linux)
have script || missing+=(bsdutils)
{ have age && have age-keygen; } || missing+=(age)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-test-deps: all test dependencies are present"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "install-test-deps: missing packages: ${missing[*]}" >&2
    echo "install them as root, e.g.:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

if ! have apt-get; then
    echo "install-test-deps: apt-get not found; install manually: ${missing[*]}" >&2
    exit 1
fi

# Keep the package maintainer scripts from starting (or restarting) system services.
policy=/usr/sbin/policy-rc.d
policy_backup=""
if [[ -e $policy ]]; then
    policy_backup=$(mktemp)
    cp -p "$policy" "$policy_backup"
fi
restore_policy() {
    if [[ -n $policy_backup ]]; then
        mv -f "$policy_backup" "$policy"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# installed temporarily by install-test-deps.sh\nexit 101\n' >"$policy"
chmod 0755 "$policy"

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

echo "install-test-deps: done"
