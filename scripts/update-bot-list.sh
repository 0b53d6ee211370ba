#!/usr/bin/env bash
# Regenerates wire/data/crawler-user-agents.txt, the crawler list the bot flag is compiled
# from (wire/src/enrich/bots.rs), from a snapshot of github.com/monperrus/crawler-user-agents
# (MIT): a git directory, bare or not, or a checkout. No hand edits to the data file: patterns
# that match a real browser pinned in wire/data/browser-user-agents.tsv are left out by the
# generator (wire/examples/bot-list.rs), which lists them in the file's header.
#   scripts/update-bot-list.sh PATH-TO-crawler-user-agents [REV]     (REV defaults to HEAD)
# Then: cargo test -p pathlight-wire, and bench/bots.sh for the recall and false-bot figures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:?usage: scripts/update-bot-list.sh PATH-TO-crawler-user-agents [REV]}
rev=${2:-HEAD}
git_() { git -C "$src" "$@"; }
commit=$(git_ rev-parse "$rev^{commit}")
date=$(git_ show -s --format=%cs "$commit")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git_ show "$commit:crawler-user-agents.json" >"$tmp/list.json"
git_ show "$commit:LICENSE" >"$tmp/LICENSE"
cd "$root"
cargo run -q -p pathlight-wire --example bot-list -- \
  "$tmp/list.json" "$tmp/LICENSE" "$commit" "$date" wire/data/browser-user-agents.tsv \
  >"$tmp/out.txt"
mv "$tmp/out.txt" wire/data/crawler-user-agents.txt
echo "wrote wire/data/crawler-user-agents.txt from $commit ($date)" >&2
