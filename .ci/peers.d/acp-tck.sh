# shellcheck shell=bash
# The official ACP conformance kit (agentclientprotocol/acp-tck, v1 suite, package 0.1.0), vendored
# in ../shared/vendor/acp-tck because CI cannot fetch it. Sourced by .ci/run with $cache and
# $JUNCTION_SHARED set: copies the kit out of the read-only shared folder and installs it into a
# venv of its own ($cache/acp-tck/venv), only when the kit's files changed.
# tests/acp/test_tck.py runs it: acp-tck --report-json OUT.json -- <agent command>.
acp_tck_src="$JUNCTION_SHARED/vendor/acp-tck"
acp_tck_dir="$cache/acp-tck"
acp_tck_pin="acp-tck 0.1.0 $(cd "$acp_tck_src" && find . -type f ! -path '*/__pycache__/*' -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$acp_tck_dir/.stamp" 2>/dev/null)" != "$acp_tck_pin" ]; then
  echo "ci: installing the ACP conformance kit into $acp_tck_dir"
  rm -rf "$acp_tck_dir"
  mkdir -p "$acp_tck_dir"
  cp -R "$acp_tck_src" "$acp_tck_dir/src"
  "${PYTHON:-python3}" -m venv "$acp_tck_dir/venv"
  "$acp_tck_dir/venv/bin/pip" install --quiet --quiet --disable-pip-version-check "$acp_tck_dir/src"
  echo "$acp_tck_pin" > "$acp_tck_dir/.stamp"
fi
unset acp_tck_src acp_tck_dir acp_tck_pin
