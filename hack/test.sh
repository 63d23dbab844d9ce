#!/usr/bin/env bash
# make test's Go tests: every package, and the race detector's run over
# alert, playbooks, internal/logging and internal/httpserver.
#
# On two cores the order decides the time. `go test` runs two packages at a
# time and starts them in the order given, so test/e2e (four to five minutes)
# and cmd/soar go first and the small packages fill the other slot; left to
# the alphabet, test/e2e started last and ran alone for minutes. Two things
# run beside them in processes of their own:
#   - the one test that only waits: TestWorkerExitsWhenTemporalRefusesItForGood
#     sits out the Temporal SDK's two-minute grace period, which nothing
#     outside the SDK can shorten;
#   - the race detector's run, which compiles its own copy of what it tests.
# Their output is printed after the main run's; any failure fails the whole.
# What it saves is measured in the README (Checking and measuring).
set -uo pipefail

GO=${GO:-go}
TEST_FLAGS=${TEST_FLAGS:?the Makefile sets TEST_FLAGS: run make test}
WAITS='^TestWorkerExitsWhenTemporalRefusesItForGood$'
RACE_PKGS=(./alert/... ./playbooks ./internal/logging/... ./internal/httpserver/...)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# timed NAME CMD...: runs CMD and writes how many seconds it took to
# $logs/NAME.s, for the summary at the end.
timed() {
	local name=$1 start rc
	shift
	start=$(date +%s)
	"$@"
	rc=$?
	echo $(($(date +%s) - start)) >"$logs/$name.s"
	return $rc
}

echo "go test: test/e2e and cmd/soar first; beside them $WAITS and the race detector (their output follows)"
# $TEST_FLAGS unquoted: it is a list of flags.
timed waits $GO test $TEST_FLAGS -run "$WAITS" ./cmd/soar/ >"$logs/waits" 2>&1 &
waits=$!
timed race $GO test -count=1 -vet=off -race "${RACE_PKGS[@]}" >"$logs/race" 2>&1 &
race=$!

timed main $GO test $TEST_FLAGS -skip "$WAITS" ./test/e2e/ ./cmd/soar/ ./...
rc=$?

wait "$waits"
rc_waits=$?
echo "go test -run '$WAITS' ./cmd/soar/"
cat "$logs/waits"
wait "$race"
rc_race=$?
echo "go test -race ${RACE_PKGS[*]}"
cat "$logs/race"

echo "go test took $(cat "$logs/main.s") s, $WAITS $(cat "$logs/waits.s") s and the race detector $(cat "$logs/race.s") s, side by side"

if [ "$rc" != 0 ] || [ "$rc_waits" != 0 ] || [ "$rc_race" != 0 ]; then
	echo "FAIL: go test exited $rc, $WAITS $rc_waits, the race detector $rc_race" >&2
	exit 1
fi
