#!/usr/bin/env bash
# Prints soar's import graph between its own packages, one line per package:
#   package -> the soar packages it imports (tests excluded)
# Usage: hack/imports.sh [packages...]   (default ./...)
# docs/architecture.md explains the directions these arrows must keep.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
go list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' "${@:-./...}" |
	awk -v mod="$mod/" '{
		line = substr($1, length(mod) + 1) " ->"
		for (i = 2; i <= NF; i++) if (index($i, mod) == 1) line = line " " substr($i, length(mod) + 1)
		print line
	}'
