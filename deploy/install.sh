#!/bin/sh
# Install digest from this source tree. The one script behind the Dockerfile, a bare server
# (run as root) and CI (.ci/run runs it into a scratch folder); see docs/deploy.md.
#
#   DIGEST_PREFIX  where the virtualenv goes           (default /opt/digest)
#   DIGEST_DATA    the instance folder: SQLite, outbox (default /var/lib/digest)
#   DIGEST_USER    the system user that runs digest    (default digest; created when root)
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=${DIGEST_PREFIX:-/opt/digest}
data=${DIGEST_DATA:-/var/lib/digest}
user=${DIGEST_USER-digest}

# Operating system packages: Python's venv, CA certificates for SMTP and DNS over TLS, and
# pg_dump/pg_restore for `digest db backup` on PostgreSQL.
missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
command -v pg_dump >/dev/null 2>&1 || missing="$missing postgresql-client"
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: please install:$missing" >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
  rm -rf /var/lib/apt/lists/*
fi

# A system user with no shell and no password, owning only the data folder.
if [ -n "$user" ] && [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$data" --no-create-home --shell /usr/sbin/nologin "$user"
fi

# The code, in a virtualenv of its own, owned by root: the service cannot change it.
python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet --no-cache-dir --upgrade pip
"$prefix/venv/bin/pip" install --quiet --no-cache-dir "$src"
mkdir -p "$prefix/docs"
cp "$src/docs/deploy.md" "$src/config/example.env" "$prefix/docs/"

# The instance folder: readers' data, so for digest's user alone.
install -d -m 0700 "$data" "$data/backups"
if [ -n "$user" ] && [ "$(id -u)" = 0 ]; then
  chown "$user:" "$data" "$data/backups"
fi

# The installed command starts and finds its packaged migrations.
"$prefix/venv/bin/digest" --help >/dev/null
"$prefix/venv/bin/python" -c 'from digest.core.resources import resource_dir; assert (resource_dir("migrations") / "env.py").is_file()'
echo "digest installed in $prefix/venv (data in $data)"
