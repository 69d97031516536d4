# pacs-edge — the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT  := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
CONFIG ?= firmware-config/dev.yaml

.PHONY: help install build typecheck run test test-unit deps deps-arm deps-bench bench chaos reliability demo arm-smoke check-config sbom package clean

help:
	@echo "make run     install, build and start the gateway on $(CONFIG) (local spool, no server needed)"
	@echo "make test    install what the tests need (DCMTK, Orthanc, …), build, run the whole suite (fault report -> .tmp/reliability.md)"
	@echo "make reliability  the fault suites (test/faults, test/crash, every test that records a fault row) -> docs/reliability.md"
	@echo "make bench   every benchmark in one run (receive, memory, forward, codecs, WAN) with issue 17 targets -> docs/benchmarks.md"
	@echo "make chaos   long crash-consistency run (SIGKILL at many points)"
	@echo "make demo    modality (storescu) -> gateway -> PACS (storescp) with a sample study, in under a minute"
	@echo "make sbom    regenerate docs/sbom.cdx.json (CycloneDX, production dependencies)"
	@echo "make arm-smoke  the gateway on arm64 Node 24 under QEMU user-mode emulation, 50 instances to storescp (JPEG-LS)"
	@echo "make package [VERSION=x.y.z] [REPO_KEY=gpg-key]  Debian packages (arm64, amd64) with their own Node 24 -> build/pkg/ (docs/deployment.md)"

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json
	@chmod +x dist/src/cli/main.js
	@# Installation integrity (docs/hardening.md): SHA-256 of dist/, package*.json and the
	@# production node_modules, checked by `run` before it opens anything (security.integrity).
	node dist/src/cli/main.js manifest

# CycloneDX SBOM of the production dependencies as installed from package-lock.json (npm ci).
sbom: install
	npm sbom --sbom-format cyclonedx --sbom-type application --omit dev > docs/sbom.cdx.json.tmp
	@# npm names the component after the checkout's folder; the product is pacs-edge.
	node -e "const f='docs/sbom.cdx.json.tmp',fs=require('fs'),s=JSON.parse(fs.readFileSync(f));s.metadata.component.name='pacs-edge';fs.writeFileSync(f,JSON.stringify(s,null,2)+'\\n')"
	mv docs/sbom.cdx.json.tmp docs/sbom.cdx.json

run: build
	node dist/src/cli/main.js run --config $(CONFIG)

check-config: build
	node dist/src/cli/main.js check-config --config $(CONFIG)

# DCMTK is the modality (storescu, echoscu) and the reference PACS (storescp) of the tests;
# Orthanc is the second, full PACS of the end-to-end tests and of the benchmarks.
# OpenJPEG's opj_decompress is the independent HTJ2K decoder of the compression tests;
# Mosquitto is the MQTT broker of the health tests. Chromium renders the status page (headless);
# dpkg-dev (dpkg-scanpackages) and gnupg build and sign the apt repository of the package test.
deps:
	@{ command -v storescu && command -v storescp && command -v echoscu && command -v opj_decompress && command -v gdcmconv && [ -x /usr/sbin/Orthanc ] && [ -x /usr/sbin/mosquitto ] && command -v rsyslogd && ls /usr/lib/*/rsyslog/lmnsd_gtls.so && command -v chromium && command -v dpkg-scanpackages && command -v gpg; } >/dev/null 2>&1 || \
	  { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends dcmtk orthanc libopenjp2-tools libgdcm-tools mosquitto rsyslog rsyslog-gnutls chromium dpkg-dev gnupg >/dev/null; }

# GDCM's gdcmconv decodes the corpus CR (lossless JPEG 2000) for the codec benchmark.
deps-bench: deps
	@command -v gdcmconv >/dev/null || { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends libgdcm-tools >/dev/null; }

# The public DICOM corpus of the corpus tests (test/helpers/corpus.ts): $PACS_EDGE_CORPUS, or
# ../shared/corpus/public when it exists and the variable is unset. Without it those tests are
# skipped; with CI set they fail instead.
CORPUS_DEFAULT := $(abspath $(CURDIR)/../shared/corpus/public)
ifeq ($(strip $(PACS_EDGE_CORPUS)),)
ifneq ($(wildcard $(CORPUS_DEFAULT)/.),)
export PACS_EDGE_CORPUS := $(CORPUS_DEFAULT)
endif
endif

# One line: which corpus the corpus tests read, or why they are skipped (fail, with CI set).
define corpus_line
n=0; [ -n "$$PACS_EDGE_CORPUS" ] && [ -d "$$PACS_EDGE_CORPUS" ] && n=$$(find "$$PACS_EDGE_CORPUS" -maxdepth 1 -name '*.dcm' | wc -l); \
case "$$CI" in ''|0|false|False|FALSE) outcome='are skipped';; *) outcome='fail (CI is set)';; esac; \
if [ "$$n" -gt 0 ]; then echo "corpus: $$PACS_EDGE_CORPUS ($$n files)"; \
elif [ -z "$$PACS_EDGE_CORPUS" ]; then echo "corpus: not found (PACS_EDGE_CORPUS unset and ../shared/corpus/public absent): the corpus tests $$outcome"; \
elif [ -d "$$PACS_EDGE_CORPUS" ]; then echo "corpus: not found (PACS_EDGE_CORPUS=$$PACS_EDGE_CORPUS: no .dcm file in it): the corpus tests $$outcome"; \
else echo "corpus: not found (PACS_EDGE_CORPUS=$$PACS_EDGE_CORPUS: no such directory): the corpus tests $$outcome"; fi
endef

# The fault tests' rows go to .tmp/reliability.md (git-ignored): `make test` leaves the working
# tree clean. `make reliability` writes docs/reliability.md (test/reliability-report.ts).
test: deps build
	npx tsc -p tsconfig.test.json
	@$(corpus_line)
	PACS_EDGE_RELIABILITY_RUN='make test' PACS_EDGE_RELIABILITY_OUT=$(CURDIR)/.tmp/reliability.md npx vitest run

# The fault suites, and every other test that records a fault row (recordFault), into
# docs/reliability.md; written only when every row lost 0 objects.
# (A shared suite such as test/cli/operator-safety.ts is passed as a path filter: it selects the test
# files named after it, operator-safety-<profile>.integration.test.ts.)
RELIABILITY_TESTS = test/faults test/crash $(sort $(patsubst %.ts,%,$(filter-out test/faults/% test/crash/% test/helpers/% test/reliability-report.ts,$(shell grep -rl --include='*.ts' recordFault test))))
reliability: deps build
	npx tsc -p tsconfig.test.json
	@# Written to docs/ only when the whole run passed (a failing test may have recorded no row).
	PACS_EDGE_RELIABILITY_RUN='make reliability' PACS_EDGE_RELIABILITY_OUT=$(CURDIR)/.tmp/reliability-run.md npx vitest run $(RELIABILITY_TESTS)
	cp .tmp/reliability-run.md docs/reliability.md && echo "docs/reliability.md written"

test-unit: build
	npx vitest run test/dicom test/config test/spool test/receive/unit

# One run of every benchmark on the current commit; writes docs/benchmarks.md whole and docs/benchmarks.json
# (about 20 min on 2 cores; knobs in bench/run-all.ts and the generated header).
bench: deps-bench build
	node dist/bench/run-all.js

demo: deps build
	node dist/bench/demo.js

# QEMU user-mode emulation and the arm64 C/C++ runtime (sysroot /usr/aarch64-linux-gnu) for arm-smoke.
deps-arm:
	@{ command -v qemu-aarch64-static && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] && [ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]; } >/dev/null || \
	  { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross >/dev/null; }

# The arm64 Debian package (its own Node 24, its LevelDB binding, its manifest) under
# qemu-aarch64-static: 50 instances through it to storescp as JPEG-LS (docs/target-platform.md).
arm-smoke: deps build deps-arm
	DEB_XZ_LEVEL=1 $(MAKE) --no-print-directory package ARCHES=arm64
	ARM_DEB=build/pkg/pacs-edge_$$(node -p 'require("./package.json").version')_arm64.deb bash .ci/arm-smoke.sh

# The chaos reports (docs/chaos.md, docs/chaos-forward.md, docs/reliability-chaos.md) are written
# to .tmp/chaos/ first and copied to docs/ only when the whole run passed; each names its commit.
chaos: deps build
	npx tsc -p tsconfig.test.json
	rm -rf .tmp/chaos && mkdir -p .tmp/chaos
	PACS_EDGE_CHAOS=1 PACS_EDGE_RELIABILITY_RUN='make chaos' PACS_EDGE_CHAOS_OUT=$(CURDIR)/.tmp/chaos/chaos.md PACS_EDGE_RELIABILITY_OUT=$(CURDIR)/.tmp/chaos/reliability-chaos.md npx vitest run test/crash test/faults
	cp .tmp/chaos/chaos.md .tmp/chaos/chaos-forward.md .tmp/chaos/reliability-chaos.md docs/ && echo "docs/chaos.md, docs/chaos-forward.md, docs/reliability-chaos.md written"

# Self-contained Debian packages, reproducible (scripts/package.sh, docs/deployment.md):
# build/pkg/pacs-edge_<version>_{amd64,arm64}.deb; VERSION overrides package.json's version;
# ARCHES="amd64" builds one; REPO_KEY=<gpg key id> also writes a signed flat apt repository.
package: build
	VERSION='$(VERSION)' ARCHES='$(or $(ARCHES),amd64 arm64)' REPO_KEY='$(REPO_KEY)' bash scripts/package.sh

clean:
	rm -rf dist var .tmp build
