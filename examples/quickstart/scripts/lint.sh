#!/bin/sh
# The quickstart app's lint stage (deployctl runs it on the host with /bin/sh):
# shell syntax of every script, shebangs and exec bits of what the image runs, the VERSION
# format, and the few Dockerfile/.dockerignore properties the deploy relies on.
set -u
cd "$(dirname "$0")/.." || exit 1

errors=0
checked=0
fail() { echo "lint: $*" >&2; errors=$((errors + 1)); }

for f in app/entrypoint app/serve app/cgi-bin/* scripts/*.sh tests/*.sh; do
  [ -f "$f" ] || continue
  checked=$((checked + 1))
  sh -n "$f" || fail "$f: shell syntax error"
  # The image runs these with busybox sh; check its dialect too when it is on this machine.
  if command -v busybox >/dev/null 2>&1; then
    busybox sh -n "$f" || fail "$f: busybox sh syntax error"
  fi
  case $f in
    app/*)
      [ -x "$f" ] || fail "$f: not executable"
      IFS= read -r first <"$f"
      [ "$first" = "#!/bin/sh" ] || fail "$f: first line must be #!/bin/sh (the image has no bash)"
      ;;
  esac
done
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck -s sh app/entrypoint app/serve app/cgi-bin/* scripts/*.sh tests/*.sh ||
    fail "shellcheck found problems"
fi

IFS= read -r version <VERSION || version=
if ! printf '%s\n' "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$'; then
  fail "VERSION: '$version' is not a semantic version like 1.2.3"
fi
[ "$(wc -l <VERSION)" -le 1 ] || fail "VERSION: must be a single line"

grep -Eq '^FROM scratch AS runtime' Dockerfile || fail "Dockerfile: no 'FROM scratch AS runtime' stage"
grep -Eq '^EXPOSE 8000' Dockerfile || fail "Dockerfile: must EXPOSE 8000"
user=$(sed -n 's/^USER[[:space:]]*//p' Dockerfile | tail -n 1)
case $user in
  '' | 0 | 0:* | root | root:*) fail "Dockerfile: the runtime must run as a non-root USER" ;;
esac
for pattern in .env '*.pem' '*.key' tests/; do
  grep -qxF "$pattern" .dockerignore || fail ".dockerignore: must exclude $pattern"
done

if [ "$errors" -gt 0 ]; then
  echo "lint: $errors problem(s) in $checked scripts and the image files" >&2
  exit 1
fi
echo "lint: OK ($checked scripts, VERSION $version, Dockerfile, .dockerignore)"
