#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/*) for SECONDS with libFuzzer through cargo-fuzz,
# and prints a Markdown table of executions and findings per target. Corpora live in
# fuzz/corpus/<target> (seeded from wire/tests/fixtures), findings in fuzz/artifacts/<target>.
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
# cargo-fuzz needs nightly-only compiler flags (sanitizer coverage); this machine has one
# stable toolchain, so RUSTC_BOOTSTRAP=1 lets it use them. Not part of `make test` (a second
# build of every crate with instrumentation); findings become regression tests instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cbor_decode v2_decode json_decode ingest)
want=0.13.1
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  cargo install cargo-fuzz --version "$want" --locked
fi
export RUSTC_BOOTSTRAP=1
echo "| target | seconds | executions | exec/s | corpus | findings |"
echo "|---|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  case $t in
    cbor_decode) cp -n wire/tests/fixtures/*.cbor "$corpus/" 2>/dev/null || true ;;
    # The target writes the v2 head itself (its size from the first byte): the fixtures
    # without their first three bytes, behind that byte.
    v2_decode) for f in wire/tests/fixtures/*.v2.cbor; do
                 { head -c1 "$f"; tail -c +4 "$f"; } >"$corpus/$(basename "$f")"; done ;;
    json_decode) cp -n wire/tests/fixtures/*.json "$corpus/" 2>/dev/null || true ;;
    ingest) for f in wire/tests/fixtures/*.cbor; do { printf '\001\004'; cat "$f"; } >"$corpus/$(basename "$f")"; done
            for f in wire/tests/fixtures/*.json; do { printf '\002\004'; cat "$f"; } >"$corpus/$(basename "$f")"; done
            for f in wire/tests/fixtures/*.v2.cbor; do { printf '\001\004'; gzip -c "$f"; } >"$corpus/$(basename "$f").gz"; done ;;
  esac
  log=$(mktemp)
  status=0
  cargo fuzz run --fuzz-dir fuzz --target-dir target/fuzz "$t" "$corpus" -- \
    -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  findings=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "| $t | $secs | $execs | $(( execs / secs )) | $(find "$corpus" -type f | wc -l) | $findings |"
  if [ "$status" -ne 0 ]; then
    echo "  $t stopped with status $status; last lines of its log:" >&2
    tail -30 "$log" >&2
  fi
  rm -f "$log"
done
