#!/usr/bin/env bash
# Installs the system tools medsec's tests use as real peers, when they are missing; prints what
# it installs. Both the README's test command (scripts/test.sh) and CI (.ci/run) call it, so the
# two cannot drift: a new peer goes into the list below and nowhere else.
#
# Debian and Ubuntu (apt-get). Runs as root, or through sudo when it is there; otherwise it names
# the packages to install and fails. MEDSEC_SKIP_INSTALL=1 skips it (for machines where another
# tool manages packages: the tests then fail or say SKIPPED where a peer is absent).
set -euo pipefail
if [ "${MEDSEC_SKIP_INSTALL:-}" = 1 ]; then
  exit 0
fi

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

# Each line: the Debian package, and why the tests need it. A package is added to the install
# list when the check before it fails.
need=()
have cc || need+=(build-essential)           # aws-lc-rs builds its C part with it
have openssl || need+=(openssl)              # keys, requests, certificates, TLS peers
have curl || need+=(curl)                    # EST and the APIs over mutual TLS
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv) # python-tuf and univers interop
have softhsm2-util || need+=(softhsm2)       # the PKCS#11 token of the agent's hardware-key test
have mosquitto || need+=(mosquitto)          # the MQTT ingestion tests start their own TLS broker
have mosquitto_pub || need+=(mosquitto-clients) # ... and publish as devices with mosquitto_pub
have promtool || need+=(prometheus)          # promtool checks the server's /metrics exposition
have rsyslogd || need+=(rsyslog)             # the event export's syslog sink is tested against rsyslog
dpkg -s rsyslog-openssl >/dev/null 2>&1 || need+=(rsyslog-openssl) # ... receiving over TLS
have chromium || need+=(chromium)            # the web console's browser tests (Playwright drives it)
have chromedriver || need+=(chromium-driver) # ... WebDriver for it, for tests that use WebDriver
have node || need+=(nodejs)                  # the OpenID provider and the browser test script
have npm || need+=(npm)                      # ... their packages (npm ci, below)

# The console tests' npm packages (oidc-provider, playwright-core, axe-core), exactly as
# package-lock.json pins them; reinstalled only when the lock file changed.
console_tests="$(dirname "$0")/../crates/medsec/tests/console"
npm_packages() {
  if ! cmp -s "$console_tests/package-lock.json" "$console_tests/node_modules/.medsec-installed-lock"; then
    echo "install-test-deps: npm ci in $console_tests"
    (cd "$console_tests" && npm ci --no-audit --no-fund --loglevel=error &&
      cp package-lock.json node_modules/.medsec-installed-lock)
  fi
}

if [ "${#need[@]}" -eq 0 ]; then
  npm_packages
  exit 0
fi
echo "install-test-deps: installing ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-test-deps: not root and no sudo; install these Debian packages first: ${need[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: no apt-get here; install the equivalents of these Debian packages: ${need[*]}" >&2
  exit 1
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
npm_packages
