# PostgreSQL for the store tests (tests/postgres.py starts a throwaway cluster on loopback from
# these binaries: initdb into a temporary folder, a free port, pg_ctl start, as the postgres
# user when CI runs as root). Debian's package; nothing runs after the install (the package's
# own cluster, if its postinst made one, is left stopped). Sourced by .ci/run.
# shellcheck shell=bash
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then
  echo "ci: installing PostgreSQL (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  if command -v pg_ctlcluster >/dev/null; then
    for cluster in /etc/postgresql/*/main; do
      [ -d "$cluster" ] || continue
      version="$(basename "$(dirname "$cluster")")"
      pg_ctlcluster "$version" main stop 2>/dev/null || true
    done
  fi
fi
