# HAProxy (Debian's haproxy) as the load balancer in front of three `junction --mode serve`
# replicas in tests/cluster/: the test writes its own config (round robin, no stickiness) into a
# temporary folder and runs it in the foreground on loopback, so nothing is started here; only
# the binary is installed when it is missing. Sourced by .ci/run with $cache set.
# shellcheck shell=bash
if ! command -v haproxy >/dev/null 2>&1; then
  echo "ci: installing haproxy (Debian)"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get -y -qq update >/dev/null
  apt-get -y -qq install --no-install-recommends haproxy >/dev/null
fi
