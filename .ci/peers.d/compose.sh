# Docker Compose v1 from Debian (docker-compose 1.29), for tests/test_container.py to validate
# deploy/compose.yaml with `docker-compose config` (parsing, schema and interpolation need no
# Docker daemon, which this kind of machine does not run). ~30 s the first time.
# shellcheck shell=bash
if ! command -v docker-compose >/dev/null; then
  echo "ci: installing docker-compose (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq docker-compose >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
fi
