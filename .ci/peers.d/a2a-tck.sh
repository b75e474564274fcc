# The A2A TCK (a2aproject/a2a-tck, branch 1.0-dev, the vendored archive in $JUNCTION_SHARED/vendor),
# extracted into $cache/a2a-tck with a venv of its own (`pip install -e .`). Sourced by .ci/run with
# $cache and $JUNCTION_SHARED set; idempotent: the stamp holds the archive's sha256.
# tests/a2a/test_tck.py runs `run_tck.py --sut-host URL` from there.
a2a_tck_archive="$JUNCTION_SHARED/vendor/a2a-tck-1.0-dev.tar.gz"
a2a_tck_dir="$cache/a2a-tck"
a2a_tck_pin="$(sha256sum "$a2a_tck_archive" | cut -d' ' -f1)"
if [ "$(cat "$a2a_tck_dir/.pin" 2>/dev/null)" != "$a2a_tck_pin" ]; then
  echo "ci: installing the A2A TCK into $a2a_tck_dir"
  rm -rf "$a2a_tck_dir"
  mkdir -p "$a2a_tck_dir/src"
  # shared/ is read-only: extract from a copy in the cache folder, never in place
  cp "$a2a_tck_archive" "$a2a_tck_dir/kit.tar.gz"
  tar -xzf "$a2a_tck_dir/kit.tar.gz" -C "$a2a_tck_dir/src"
  rm "$a2a_tck_dir/kit.tar.gz"
  "${PYTHON:-python3}" -m venv "$a2a_tck_dir/venv"
  "$a2a_tck_dir/venv/bin/pip" install --quiet --quiet --disable-pip-version-check -e "$a2a_tck_dir/src"
  echo "$a2a_tck_pin" > "$a2a_tck_dir/.pin"
fi
unset a2a_tck_archive a2a_tck_dir a2a_tck_pin
