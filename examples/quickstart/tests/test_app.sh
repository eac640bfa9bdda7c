#!/bin/sh
# shellcheck disable=SC2086  # $run and $run_with may be "busybox sh": split on purpose
# The quickstart app's test stage (deployctl runs it on the host with /bin/sh, no Docker needed).
# Runs the CGI scripts directly with CGI environment variables, then whole HTTP requests through
# app/serve, under the host's sh and, when present, busybox sh (the shell the image uses).
set -u
cd "$(dirname "$0")/.." || exit 1
APP=$(pwd)/app
# The deploy tool may export some of these (GIT_SHA surely); the tests set what they need.
unset GIT_SHA FAIL_HEALTH MODEL_LOAD_SECONDS STARTED_FILE APP_DIR VERSION_FILE CR READ_TIMEOUT

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { passed=$((passed + 1)); }
not_ok() { failed=$((failed + 1)); echo "FAIL [$shell_name] $1" >&2; shift; for l in "$@"; do echo "    $l" >&2; done; }

# expect NAME OUTPUT PATTERN...: every grep -E pattern must match some line of OUTPUT
expect() {
  name=$1 output=$2
  shift 2
  for pattern in "$@"; do
    if ! printf '%s\n' "$output" | grep -Eq -- "$pattern"; then
      not_ok "$name: no line matches /$pattern/" "got: $(printf '%s' "$output" | tr '\r\n' '~|' | cut -c1-300)"
      return
    fi
  done
  ok
}

uptime_cs() { read -r up _ </proc/uptime; up=${up%.*}${up#*.}; echo "${up#"${up%%[!0]*}"}"; }

# request SHELL "METHOD PATH" BODY [NAME=VALUE...]: one HTTP/1.1 request, CRLF line endings,
# through the router, with extra environment for the app
request() {
  run_with=$1 line=$2 body=$3
  shift 3
  {
    printf '%s HTTP/1.1\r\nHost: test\r\nUser-Agent: test_app.sh\r\n' "$line"
    [ -n "$body" ] && printf 'Content-Length: %s\r\n' "${#body}"
    printf '\r\n%s' "$body"
  } | env QUIET_ACCESS_LOG=1 APP_DIR="$APP" VERSION_FILE="$PWD/VERSION" \
    STARTED_FILE="$tmp/started" "$@" $run_with "$APP/serve"
}

shells="sh"
command -v busybox >/dev/null 2>&1 && shells="sh busybox"

for shell_name in $shells; do
  run=$shell_name
  [ "$shell_name" = busybox ] && run="busybox sh"

  # --- CGI scripts, run directly --------------------------------------------------------
  out=$(REQUEST_METHOD=GET $run "$APP/cgi-bin/live")
  expect "live" "$out" '^Status: 200' '^Content-Type: application/json' '^\{"status":"alive"\}$'

  uptime_cs >"$tmp/started"
  out=$(STARTED_FILE="$tmp/started" MODEL_LOAD_SECONDS=3 $run "$APP/cgi-bin/ready")
  expect "ready while loading" "$out" '^Status: 503' '"status":"loading"' '"seconds_left":[123]\}'

  echo $(($(uptime_cs) - 400)) >"$tmp/started"  # started 4 s ago
  out=$(STARTED_FILE="$tmp/started" MODEL_LOAD_SECONDS=3 $run "$APP/cgi-bin/ready")
  expect "ready after load" "$out" '^Status: 200' '^\{"status":"ready"\}$'

  out=$(STARTED_FILE="$tmp/started" MODEL_LOAD_SECONDS=10 $run "$APP/cgi-bin/ready")
  expect "MODEL_LOAD_SECONDS is honoured" "$out" '^Status: 503' '"seconds_left":(5|6|7)\}'

  out=$(STARTED_FILE="$tmp/started" MODEL_LOAD_SECONDS=soon $run "$APP/cgi-bin/ready")
  expect "bad MODEL_LOAD_SECONDS falls back to 3" "$out" '^Status: 200'

  out=$(STARTED_FILE="$tmp/started" MODEL_LOAD_SECONDS=0 FAIL_HEALTH=1 $run "$APP/cgi-bin/ready")
  expect "FAIL_HEALTH=1 is never ready" "$out" '^Status: 503' '"status":"failing"'

  out=$(STARTED_FILE="$tmp/missing" $run "$APP/cgi-bin/ready" 2>&1)
  expect "ready without start time" "$out" '^Status: 503' '"status":"starting"'

  version=$(cat VERSION)
  out=$(VERSION_FILE="$PWD/VERSION" GIT_SHA=0123abc $run "$APP/cgi-bin/version")
  expect "version" "$out" '^Status: 200' "^\\{\"version\":\"$version\",\"git_sha\":\"0123abc\"\\}\$"

  out=$(VERSION_FILE="$PWD/VERSION" GIT_SHA='x","evil":"1' $run "$APP/cgi-bin/version")
  expect "version refuses a GIT_SHA that would break the JSON" "$out" '"git_sha":"invalid"\}$'

  echo "2.0.0-rc.1" >"$tmp/VERSION"
  out=$(VERSION_FILE="$tmp/VERSION" $run "$APP/cgi-bin/version")
  expect "version comes from the VERSION file" "$out" '"version":"2\.0\.0-rc\.1","git_sha":""'

  out=$(printf '{"prompt":"hi"}' | REQUEST_METHOD=POST CONTENT_LENGTH=15 $run "$APP/cgi-bin/chat")
  expect "chat" "$out" '^Status: 200' '^\{"reply":"hello from the model"\}$'

  # --- whole requests through the router --------------------------------------------------
  uptime_cs >"$tmp/started"
  out=$(request "$run" "GET /health/live" "")
  expect "GET /health/live" "$out" '^HTTP/1\.1 200 OK.$' '^Content-Length: 19.$' '^Connection: close.$' \
    '^\{"status":"alive"\}$'

  out=$(request "$run" "GET /health/ready" "" MODEL_LOAD_SECONDS=30)
  expect "GET /health/ready while loading" "$out" '^HTTP/1\.1 503 Service Unavailable.$' '"status":"loading"'

  out=$(request "$run" "GET /health/ready?probe=1" "" MODEL_LOAD_SECONDS=0)
  expect "GET /health/ready with a query string" "$out" '^HTTP/1\.1 200 OK.$' '^\{"status":"ready"\}$'

  out=$(request "$run" "GET /version" "" GIT_SHA=feed42)
  expect "GET /version" "$out" '^HTTP/1\.1 200 OK.$' "\"git_sha\":\"feed42\""

  out=$(request "$run" "POST /" '{"prompt":"what is 2+2?"}')
  expect "POST / with a body" "$out" '^HTTP/1\.1 200 OK.$' '^\{"reply":"hello from the model"\}$'

  out=$(printf 'POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi' |
    env QUIET_ACCESS_LOG=1 APP_DIR="$APP" $run "$APP/serve")
  expect "Expect: 100-continue" "$out" '^HTTP/1\.1 100 Continue.$' '^HTTP/1\.1 200 OK.$' '"reply"'

  out=$(request "$run" "GET /missing" "")
  expect "unknown path" "$out" '^HTTP/1\.1 404 Not Found.$'

  out=$(request "$run" "DELETE /" "")
  expect "unsupported method" "$out" '^HTTP/1\.1 405 '

  out=$(request "$run" "HEAD /version" "")
  expect "HEAD sends headers only" "$out" '^HTTP/1\.1 200 OK.$'
  case $out in *'"version"'*) not_ok "HEAD /version sent a body" ;; *) ok ;; esac

  # Content-Length must be the exact body size, or clients hang or truncate.
  out=$(request "$run" "GET /" "" | tr -d '\r')
  declared=$(printf '%s\n' "$out" | sed -n 's/^Content-Length: //p')
  actual=$(printf '%s\n' "$out" | sed '1,/^$/d' | wc -c)
  if [ "$declared" = "$actual" ]; then ok; else not_ok "Content-Length $declared, body $actual bytes"; fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
