# Redis (Debian's redis-server) for the rate-limit tests: tests/limits_redis.py starts a
# throwaway server per test session on a free loopback port (no persistence, no config file),
# so nothing is started here; only the binary is installed when it is missing. Sourced by
# .ci/run with $cache set.
# shellcheck shell=bash
if ! command -v redis-server >/dev/null 2>&1; then
  echo "ci: installing redis-server (Debian)"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get -y -qq update >/dev/null
  apt-get -y -qq install --no-install-recommends redis-server >/dev/null
fi
