#!/usr/bin/env bash
# Copies the dashboard's charting library (uPlot, pinned in tests/package.json) from npm into
# www/vendor/, where the collector serves it: the dashboards load no third-party URL.
# tests/browser/viewer.test.mjs checks the committed copy matches the pinned package.
#   scripts/vendor-www.sh          (after `npm ci` in tests/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tests/node_modules/uplot
mkdir -p "$root/www/vendor"
cp "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$root/www/vendor/"
cp "$src/LICENSE" "$root/www/vendor/uPlot.LICENSE"
echo "www/vendor: uPlot $(node -p "require('$src/package.json').version")"
