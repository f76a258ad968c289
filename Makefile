# janua: everything starts here. `make demo` runs the main job, `make test` runs every test (then the
# verifier-side suites again on PostgreSQL: `make test-pg`), `make bench` writes bench/results.json. The venv and packages are installed when missing.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the benchmarks and the interop tests need (command -> package; a /path is a file test, and may
# be a glob: any match counts). postgresql: the server binaries of tests/pgcluster.py (a client-only install has
# /usr/lib/postgresql/<major>/bin but no initdb); runuser runs that cluster as `postgres` when the tests run as root.
# chromium + chromium-driver: the console's browser tests (tests/console_browser) drive Debian's headless Chromium
# through its chromedriver with selenium; nothing is downloaded at test time.
BENCH_DEBS := wrk:wrk taskset:util-linux gcc:gcc mosquitto:mosquitto
TEST_DEBS  := openssl:openssl gnutls-serv:gnutls-bin coap-server-openssl:libcoap3-bin mosquitto:mosquitto \
              gcc:gcc /usr/include/mosquitto_plugin.h:mosquitto-dev /usr/include/mosquitto.h:libmosquitto-dev \
              /usr/include/openssl/x509.h:libssl-dev swtpm:swtpm swtpm_setup:swtpm-tools tpm2_quote:tpm2-tools \
              systemd-analyze:systemd '/usr/lib/postgresql/*/bin/initdb:postgresql' /usr/sbin/runuser:util-linux \
              chromium:chromium chromedriver:chromium-driver

.PHONY: all demo test test-sqlite test-pg bench fuzz venv mplib debs-bench debs-test clean

all: test

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (install python3.11 and python3.11-venv)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# The checkout's tools/ and verifier/ importable by name in this venv (tests, bench, `python -m tools`); a
	@# wheel keeps them inside janua_host instead (setup.py).
	echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/janua-checkout.pth"
	@touch $(STAMP)

venv: $(STAMP)

# MicroPython libraries the device tests load from .venv/mplib (the unix port's path), taken from
# PyPI. micropython-umqtt.simple is an sdist without setup.py: pip downloads and unpacks it, then
# refuses to build it; --no-clean keeps the unpacked tree (under TMPDIR), from which simple.py is copied.
MPLIB_STAMP := $(VENV)/.mplib-stamp
UMQTT_PIN   := micropython-umqtt.simple==1.3.4
$(MPLIB_STAMP): $(STAMP)
	rm -rf $(VENV)/mpdeps && mkdir -p $(VENV)/mpdeps/tmp $(VENV)/mplib/umqtt
	TMPDIR=$(abspath $(VENV)/mpdeps/tmp) $(VENV)/bin/pip download -q --no-clean --no-deps --no-binary :all: \
	  $(UMQTT_PIN) -d $(VENV)/mpdeps >/dev/null 2>&1 || true
	@src=$$(find $(VENV)/mpdeps -path '*/umqtt/simple.py' | head -n1); \
	  [ -n "$$src" ] || { echo "make: could not obtain umqtt/simple.py ($(UMQTT_PIN)) from PyPI"; exit 1; }; \
	  cp "$$src" $(VENV)/mplib/umqtt/simple.py
	rm -rf $(VENV)/mpdeps/tmp
	@touch $(MPLIB_STAMP)

mplib: $(MPLIB_STAMP)

debs-bench debs-test:
	@missing=""; for pair in $(if $(filter debs-bench,$@),$(BENCH_DEBS),$(TEST_DEBS)); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  case $$cmd in /*) set -- $$cmd; [ -e "$$1" ];; *) command -v $$cmd >/dev/null;; esac || missing="$$missing $$pkg"; done; \
	if [ "$@" = debs-bench ] && [ ! -f /usr/include/openssl/ssl.h ]; then missing="$$missing libssl-dev"; fi; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

# The mosquitto plugin that refuses a certificate client whose client id is not its certificate's CN
# (verifier/broker_plugin/janua_clientid.c); `janua mqtt config` loads it from here when it exists.
CLIENTID_PLUGIN := $(VENV)/lib/janua_clientid.so
$(CLIENTID_PLUGIN): verifier/broker_plugin/janua_clientid.c | $(STAMP) debs-test
	gcc -shared -fPIC -O2 -Wall -Wextra -o $@ $< -lcrypto

demo: $(STAMP)
	$(VENV)/bin/janua demo $(DEMO_ARGS)

# `make test`: every test on SQLite (test-sqlite) and the PostgreSQL pass (test-pg) side by side, each one's output
# shown whole when it ends (-O); both run to the end (-k), and it fails if either failed.
test: $(STAMP) $(MPLIB_STAMP) debs-test $(CLIENTID_PLUGIN)
	@$(MAKE) --no-print-directory -j2 -Otarget -k test-sqlite test-pg

test-sqlite: $(STAMP) $(MPLIB_STAMP) debs-test $(CLIENTID_PLUGIN)
	$(PY) -m pytest -q -p no:cacheprovider

# The verifier-side suites again with every verifier they build in process on PostgreSQL instead of a SQLite
# file (JANUA_TEST_BACKEND=postgresql: one schema per registry path in the session's private cluster,
# tests/conftest.py); what is about the SQLite file itself is marked sqlite_only and skipped. tests/pg (the
# PostgreSQL-only tests) is part of the SQLite run. The device-side suites (firmware, vboard, *_device, e2e)
# are not here: they use the verifier through subprocesses or not at all.
PG_SUITES := tests/verifier tests/api tests/roles tests/fleet tests/health tests/attest tests/notify \
             tests/ota_verifier tests/tokens_verifier tests/mqtt_verifier tests/dtls_verifier tests/gateway \
             tests/edge tests/tls tests/backup tests/kek tests/tools tests/console tests/claims
test-pg: $(STAMP) $(MPLIB_STAMP) debs-test $(CLIENTID_PLUGIN)
	JANUA_TEST_BACKEND=postgresql $(PY) -m pytest -q -p no:cacheprovider $(PG_SUITES)

bench: $(STAMP) $(MPLIB_STAMP) debs-bench
	$(PY) -m bench.run

# Every fuzz target (atheris on the host, the MicroPython unix port for the device) for FUZZ_S seconds
# each, or with FUZZ_EXECS=N until N inputs each; results in fuzz/results.json, crashing inputs in
# fuzz/crashes/. The short deterministic run is part of `make test` (tests/fuzz/test_fuzz_short.py).
FUZZ_S ?= 60
FUZZ_EXECS ?=
fuzz: $(STAMP)
	$(PY) -m fuzz.run $(if $(FUZZ_EXECS),--execs $(FUZZ_EXECS),--seconds $(FUZZ_S))

clean:
	rm -rf $(VENV) build *.egg-info bench/work fuzz/corpus fuzz/crashes
