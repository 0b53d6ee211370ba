#!/usr/bin/env bash
# The bot flag against public User-Agent corpora (issue 30), and what it costs. Prints Markdown.
#   bench/bots.sh [BASELINE_REV]
# 1. bench/bot-corpora.mjs writes the corpora, read from git snapshots of their repositories
#    (it says which; PL_* variables point elsewhere than the defaults);
# 2. wire's bot-corpora example prints, per corpus, the share flagged as bots and the share
#    whose device equals the corpus's label, for parse_user_agent as built and for the rules it
#    replaced (kept in the example), so before and after come from one run;
# 3. under valgrind (deterministic, where wall time on a shared machine is not): instructions
#    per parse_user_agent and per enrichment of the criterion bench's 20-event batch, for two
#    browsers' User-Agents; with BASELINE_REV, the same at that revision too, built in a
#    temporary worktree with this tree's ua-cost example.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
base=${1:-}
dir=$(mktemp -d /tmp/pathlight-bench-bots-XXXX)
trap 'git worktree remove --force "$dir/base" 2>/dev/null || true; rm -rf "$dir"' EXIT
target=${CARGO_TARGET_DIR:-target}

node bench/bot-corpora.mjs "$dir/corpora" 2>&1 | sed 's/^/    /' >&2
cargo build --release -q -p pathlight-wire --example bot-corpora --example ua-cost
"$target/release/examples/bot-corpora" \
  "$dir"/corpora/{crawler-user-agents-instances,device-detector-bots,isbot-crawlers,uap-core-spiders,device-detector-browsers,isbot-browsers,top-user-agents}.tsv

command -v valgrind >/dev/null || { echo; echo "(no valgrind: instruction counts skipped)"; exit 0; }
builds=("now:$target/release/examples/ua-cost")
if [ -n "$base" ]; then
  git worktree add -q --detach "$dir/base" "$base"
  mkdir -p "$dir/base/wire/examples"
  cp wire/examples/ua-cost.rs "$dir/base/wire/examples/"
  printf '\n[[example]]\nname = "ua-cost"\nrequired-features = ["std"]\n' >>"$dir/base/wire/Cargo.toml"
  (cd "$dir/base" && CARGO_TARGET_DIR="$dir/base-target" cargo build --release -q -p pathlight-wire --example ua-cost)
  builds=("$base:$dir/base-target/release/examples/ua-cost" "${builds[@]}")
fi
# Instructions per iteration: a run of N iterations less a run of none (start-up and the
# tables built on first use), over N.
per() {
  local n=$4 a b
  a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 0 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" "$n" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo $(((b - a) / n))
}
chrome="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
iphone="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
echo
echo "| build | parse_user_agent, Chrome/Windows | parse_user_agent, Safari/iPhone | enrich 20 events, Chrome/Windows | enrich 20 events, Safari/iPhone |"
echo "|---|---:|---:|---:|---:|"
for b in "${builds[@]}"; do
  echo "| ${b%%:*} | $(per "${b#*:}" parse "$chrome" 1000) | $(per "${b#*:}" parse "$iphone" 1000) | $(per "${b#*:}" enrich "$chrome" 300) | $(per "${b#*:}" enrich "$iphone" 300) |"
done
echo
echo "(instructions, valgrind --tool=callgrind)"
