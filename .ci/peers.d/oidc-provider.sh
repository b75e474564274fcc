# A real, certified OpenID provider (npm oidc-provider, panva's node-oidc-provider) for the
# identity tests: tests/identity/provider.mjs runs it on 127.0.0.1 with the clients, keys and
# flows the tests need. Needs Node >= 20.19 (the machine's). Sourced by .ci/run with $cache set;
# tests/identity/ finds it under $JUNCTION_CI_CACHE/oidc.
# shellcheck shell=bash
oidc_provider_pin="oidc-provider@9.13.3"
oidc_provider_dir="$cache/oidc"
if [ "$(cat "$oidc_provider_dir/.stamp" 2>/dev/null)" != "$oidc_provider_pin" ]; then
  echo "ci: installing $oidc_provider_pin"
  rm -rf "$oidc_provider_dir"
  mkdir -p "$oidc_provider_dir"
  npm install --silent --no-audit --no-fund --prefix "$oidc_provider_dir" "$oidc_provider_pin"
  echo "$oidc_provider_pin" > "$oidc_provider_dir/.stamp"
fi
