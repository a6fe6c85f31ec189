#!/usr/bin/env bash
# Entrypoint of the streamctl test image. It honours the documented interface of the official images, so
# the Docker backend configures this image exactly as it configures postgres / citusdata/citus / redis:
#   postgres [-c key=value ...]   POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA,
#                                 POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d;
#                                 each POSTGRES_* value may come from a file instead (POSTGRES_PASSWORD_FILE
#                                 =/run/secrets/...), as with the official image: Docker/Swarm secrets
#   redis-server [args ...]       arguments passed through; data in the working directory (/data)
# Servers run unprivileged (postgres / redis), never as root. Anything else is executed as given.
set -Eeuo pipefail

# `docker run IMAGE -c key=value`: options alone mean "postgres with these options".
if [[ $# -eq 0 || "${1:0:1}" == "-" ]]; then
    set -- postgres "$@"
fi

file_env() {  # VAR from $VAR_FILE when that is set (Docker secrets); both set is an error, as upstream
    local var=$1 file_var="${1}_FILE"
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        echo "error: both $var and $file_var are set (they are exclusive)" >&2
        exit 1
    fi
    if [[ -n "${!file_var:-}" ]]; then
        if [[ ! -r "${!file_var}" ]]; then
            echo "error: $file_var names ${!file_var}, which cannot be read" >&2
            exit 1
        fi
        export "$var"="$(<"${!file_var}")"
        unset "$file_var"
    fi
}

drop_to() {  # re-run this script as an unprivileged user, keeping PID 1 (signals reach the server)
    local user=$1
    shift
    # HOME as the user's own (as gosu does): libpq in the server (Citus, postgres_fdw, subscriptions) looks
    # for ~/.postgresql/ client certificates, and root's 0700 home would make every such connection fail.
    HOME="$(getent passwd "$user" | cut -d: -f6)"
    export HOME
    exec setpriv --reuid="$user" --regid="$user" --init-groups -- "${BASH_SOURCE[0]}" "$@"
}

pg_init() {  # first start on an empty PGDATA: initdb, the database, init scripts
    local user="${POSTGRES_USER:-postgres}" db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$auth" != trust ]]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "       (set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    local pwfile
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
    initdb --username="$user" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf '\n# added by the entrypoint: password logins from any host\nhost all all all %s\n' "$auth" \
        >>"$PGDATA/pg_hba.conf"

    # A temporary server on the Unix socket only, so nothing connects before initialisation ends.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --no-password --dbname postgres)
    if [[ "$db" != postgres ]]; then
        "${psql[@]}" --set db="$db" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; bash "$f" ;;
            *.sql) echo "running $f"; "${psql[@]}" --dbname "$db" -f "$f" ;;
            *) [[ -e "$f" ]] && echo "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
}

case "$1" in
    postgres)
        for v in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB POSTGRES_INITDB_ARGS; do
            file_env "$v"
        done
        : "${PGDATA:=/var/lib/postgresql/data}"
        export PGDATA
        if [[ "$(id -u)" == 0 ]]; then
            mkdir -p "$PGDATA" /var/run/postgresql
            chown postgres:postgres "$PGDATA" /var/run/postgresql
            chmod 0700 "$PGDATA"
            chmod 3777 /var/run/postgresql
            drop_to postgres "$@"
        fi
        if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
            pg_init
        fi
        unset POSTGRES_PASSWORD  # initdb has it; the server's environment does not need it
        exec "$@"
        ;;
    redis-server)
        if [[ "$(id -u)" == 0 ]]; then
            # The data directory may be a fresh volume owned by root: hand it to redis first.
            find . \! -user redis -exec chown redis:redis '{}' +
            umask 0077
            drop_to redis "$@"
        fi
        exec "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
