#!/usr/bin/env bash
# The system packages `make test` drives for real: a PostgreSQL server (the store's suite runs on it
# too), Java 17 with Maven for the Kafka broker the tests start (scripts/kafka.sh), Debian's Chromium
# for the browser tests (Playwright drives /usr/bin/chromium; no browser download), Node.js for the
# page's unit tests, and Python's venv.
# Installs the missing ones when it can (root and apt-get); otherwise stops, saying what to run.
# Only shell builtins decide what is missing, so it runs with any PATH.
set -euo pipefail
here="${BASH_SOURCE[0]%/*}"
[ "$here" != "${BASH_SOURCE[0]}" ] || here=.
cd "$here/.."

missing=()
if [ -z "${ALSTREAM_TEST_POSTGRES_URL:-}" ] && ! command -v pg_ctl >/dev/null \
  && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
  && ! [ -x "${ALSTREAM_PG_BINDIR:-/nonexistent}/initdb" ]; then
  missing+=(postgresql)
fi
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || compgen -G ".kafka/lib/kafka_2.13-*.jar" >/dev/null || missing+=(maven)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null || ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
  missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages for the tests: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v apt-get >/dev/null; then
  echo "make test needs these system packages: ${missing[*]}. Install them, then run make test again:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
else
  echo "make test needs these system packages (Debian names): ${missing[*]}. This system has no" >&2
  echo "apt-get: install them with its package manager (PostgreSQL's initdb and pg_ctl, Java 17," >&2
  echo "Maven, Chromium at /usr/bin/chromium, Node.js, Python's venv), then run make test again." >&2
  exit 1
fi
