# Sourced by scripts/test.sh: ensure_chromium makes sure Debian's chromium and
# chromium-driver are installed for the browser tests (tests/web/test_browser.py) and
# exports REVCRM_TEST_CHROMIUM / REVCRM_TEST_CHROMEDRIVER. When they are missing and we
# run as root with apt-get, it installs them; otherwise it says so in one line. Outside
# CI the browser tests then skip; with CI=true a missing browser is fatal here.

_chromium_fail() {
  echo "chromium: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    echo "chromium: CI=true, so a missing browser is a failure" >&2
    exit 1
  fi
  return 0
}

_chromium_paths() {
  REVCRM_TEST_CHROMIUM=${REVCRM_TEST_CHROMIUM:-$(command -v chromium || true)}
  REVCRM_TEST_CHROMEDRIVER=${REVCRM_TEST_CHROMEDRIVER:-$(command -v chromedriver || true)}
}

ensure_chromium() {
  _chromium_paths
  if [ -z "$REVCRM_TEST_CHROMIUM" ] || [ -z "$REVCRM_TEST_CHROMEDRIVER" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "chromium: installing Debian's chromium and chromium-driver"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
        || { _chromium_fail "apt-get install chromium chromium-driver failed"; return 0; }
      unset REVCRM_TEST_CHROMIUM REVCRM_TEST_CHROMEDRIVER
      _chromium_paths
    else
      _chromium_fail "chromium/chromedriver not found (apt-get install chromium chromium-driver, as root)"
      return 0
    fi
  fi
  if [ -z "$REVCRM_TEST_CHROMIUM" ] || [ -z "$REVCRM_TEST_CHROMEDRIVER" ]; then
    _chromium_fail "chromium/chromedriver still not found after installing"
    return 0
  fi
  export REVCRM_TEST_CHROMIUM REVCRM_TEST_CHROMEDRIVER
  echo "chromium: $("$REVCRM_TEST_CHROMIUM" --version 2>/dev/null | head -n 1) with $REVCRM_TEST_CHROMEDRIVER"
}
