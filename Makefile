# tcpclose-trace: build, regenerate the BPF object, lint and test.
# `sudo make test` runs everything (the end-to-end suite needs root).

GO       ?= go
CLANG    ?= clang-19
STRIP    ?= llvm-strip-19
CLANG_FORMAT ?= clang-format-19
BIN      := bin/tcpclose-trace
# The Kubernetes manifests' tests: a Go module of their own, so that the
# Kubernetes, Helm and kustomize libraries stay out of go.mod.
KUBETEST := deploy/kubetest
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VERSION  := $(VERSION)

# The container image: a static, reproducible build of the binary (no cgo, no
# local paths, no VCS stamp, no build id: two builds of one commit are
# byte-identical) packed by tcpclose-mkimage. Every time in the image is
# SOURCE_DATE_EPOCH (default: the commit time). The Dockerfile uses the same
# flags. `make image IMAGE_ARCH=arm64` builds for arm64.
IMAGE_ARCH     ?= $(shell $(GO) env GOARCH)
IMAGE_ARCH     := $(IMAGE_ARCH)
STATIC_BIN     ?= bin/linux-$(IMAGE_ARCH)/tcpclose-trace
IMAGE          ?= bin/tcpclose-trace-image.tar
STATIC_FLAGS   := -trimpath -buildvcs=false
STATIC_LDFLAGS  = -s -w -buildid= -X main.version=$(VERSION)
REVISION       ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

# The Debian 12 packages that building and testing need: the one list, by
# group. `make deps` (and so .ci/run) installs what is missing or at another
# version (.ci/deps); tools/cleanroot.sh builds the BPF object in a minimal
# Debian 12 root that holds DEB_BPF and nothing else, so a package missing
# here fails `make test`. The BPF object must come out byte-identical, so its
# toolchain is pinned.
#   clang-19: compiles bpf/tcpclose.c (bpf2go); llvm-19: llvm-strip-19;
#   libbpf-dev: bpf_helpers.h, bpf_core_read.h, bpf_tracing.h, bpf_endian.h;
#   make: make generate.
DEB_BPF    := clang-19=1:19.1.7-3~deb12u1 llvm-19=1:19.1.7-3~deb12u1 libbpf-dev=1:1.1.2-0+deb12u1 make
# clang-format-19: make lint, the C style.
DEB_LINT   := clang-format-19=1:19.1.7-3~deb12u1
# git: version stamp; gcc: go test -race (cgo); iproute2: ip netns, nstat, ss;
# procps: sysctl; util-linux: setpriv, unshare; prometheus: promtool and the
# server for the metric and rule tests; skopeo: reads the OCI image archive;
# debootstrap: the clean root; nginx, haproxy, python3, curl: e2e/realapps.
DEB_TEST   := git gcc iproute2 procps util-linux prometheus skopeo debootstrap nginx haproxy python3 curl openjdk-17-jdk-headless
# The kernel matrix: the guests' userland and initramfs, qemu (x86 and, for the
# arm64 guests, arm), the kernel packages' compression (installed without
# recommends). An arm64 guest's userland comes from Debian's arm64 packages,
# downloaded into $(VMTEST_CACHE), not installed.
DEB_VMTEST := busybox-static cpio qemu-system-x86 qemu-system-arm xz-utils
# make bench: the peers (bpftrace, bcc's tcpstates and tcplife).
DEB_BENCH  := bpftrace bpfcc-tools

# make vmtest KERNEL=5.10|6.1|6.12: the end-to-end suite on a Debian kernel under
# qemu (5.10 is Debian 11's, fetched from the bullseye suite through a private apt
# configuration in $(VMTEST_CACHE); the host's apt configuration is untouched).
# make test runs it on every kernel of the matrix (the host's own run is the
# end-to-end suite before it).
MATRIX_KERNELS := 5.10,6.1,6.12
# make vmtest-arm64: the selftest on Debian 12's arm64 cloud kernels under
# qemu-system-aarch64 (software emulation; arm64 static binaries; about 2 to 3
# minutes per kernel once cached). make test runs MATRIX_ARM64, the ones that
# pass: both (Debian's 6.1 arm64 kernel has no ftrace direct calls and refuses
# BPF trampolines; kprobes stand in for the four fentry hooks there).
ARM64_KERNELS := 6.1-arm64,6.12-arm64
MATRIX_ARM64  := 6.1-arm64,6.12-arm64
KERNEL       ?= 6.1
VMTEST_CACHE ?= .cache/vmtest

.PHONY: all build static image generate check-generated check-generated-host lint race fuzz test unit kubetest e2e soak deps deb-packages bench vmtest vmtest-matrix vmtest-arm64 vmtest-deps clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/tcpclose-trace

# The static binary of the image (needs only Go: the BPF object is committed).
static:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build $(STATIC_FLAGS) -ldflags "$(STATIC_LDFLAGS)" -o $(STATIC_BIN) ./cmd/tcpclose-trace

# OCI image archive of the static binary, built without a container engine;
# prints the image digest. Named docker.io/library/tcpclose-trace:$(VERSION),
# fully qualified as containerd stores it; the manifests deploy 0.1.0 (make
# image VERSION=0.1.0; deploy/kubernetes/README.md has the load steps).
# Load it with ctr images import, kind load image-archive, podman load,
# docker load or skopeo.
image: static
	@mkdir -p $(dir $(IMAGE))
	$(GO) run ./tools/tcpclose-mkimage -binary $(STATIC_BIN) -arch $(IMAGE_ARCH) -o $(IMAGE) \
		-version "$(VERSION)" -revision "$(REVISION)" -source-date-epoch "$(SOURCE_DATE_EPOCH)"

# Rebuild bpf/tcpclose_bpfel.{o,go} and the compat build for kernels before 5.12,
# bpf/tcpclose_compat_bpfel.{o,go}, from bpf/tcpclose.c with the pinned clang.
# tools/bpfgen builds into a scratch directory and replaces the committed files
# only when the build succeeded.
generate:
	BPF2GO_CC=$(CLANG) BPF2GO_STRIP=$(STRIP) $(GO) generate ./...

# Fails when the committed BPF object or bindings differ from a build in a
# minimal Debian 12 root holding only the declared `bpf` packages (root;
# debootstrap; the root is cached, so after the first run this takes seconds).
check-generated:
	bash tools/cleanroot.sh

# The same comparison against a build with this host's own packages (no root).
check-generated-host: generate
	@git diff --exit-code -- bpf/ || { echo "bpf/: generated files drifted; run 'make generate' and commit" >&2; exit 1; }

# staticcheck, pinned: `go run pkg@version` fetches and builds it through the
# module proxy (cached after the first run) and keeps it out of go.mod.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi
	$(GO) vet ./...
	cd $(KUBETEST) && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd $(KUBETEST) && $(GO) run $(STATICCHECK) ./...
	$(CLANG_FORMAT) --dry-run -Werror bpf/*.c bpf/*.h

# The race detector (needs cgo and gcc) over the unit tests. Left out are the
# packages whose tests as a whole need root: they create network namespaces and
# run the tracer (e2e, internal/scenario, tools/tcpclose-bench). In the others the
# few root-only tests skip without root and, as root, run under -race as well.
RACE_SKIP := /e2e(/.*)?$$|/internal/scenario$$|/tools/tcpclose-bench$$
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -Ev '$(RACE_SKIP)')

unit: kubetest
	$(GO) test -p 1 -count=1 $$($(GO) list ./... | grep -v /e2e)

# Builds the kustomize manifests and renders the Helm chart in process,
# decodes every object strictly and checks it (no cluster needed).
kubetest:
	cd $(KUBETEST) && $(GO) test -p 1 -count=1 -timeout 10m ./...

e2e:
	$(GO) test -count=1 -v -timeout 30m ./e2e/...

# The daemon for MINUTES minutes under mixed connection and pod churn in a
# private namespace, scraped every second (e2e/soak_test.go; root; not part of
# make test): prints a table of RSS, goroutines, fds and CPU after each round
# and fails on growth after the warm-up or any counter that differs from the
# namespace's nstat deltas.
MINUTES ?= 10
soak:
	TCPCLOSE_SOAK_MINUTES=$(MINUTES) $(GO) test -count=1 -v -run '^TestSoak$$' \
		-timeout $$(awk 'BEGIN { printf "%dm", $(MINUTES) + 10 }') ./e2e/

# A short run of each fuzz target (FUZZTIME each; longer: make fuzz FUZZTIME=10m).
FUZZTIME ?= 5s
FUZZ_TARGETS := output:FuzzTableRow output:FuzzSummaryRow output:FuzzMachineLines output:FuzzPrintable exporter:FuzzByOwnerLabels
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) ./$${t%%:*}/; \
	done

# The whole suite: lint, drift check, unit and end-to-end tests (root).
# TCPCLOSE_REQUIRE_TOOLS=1 turns a missing promtool/prometheus into a failure.
# -p 1: e2e and the benchmark smoke run both attach host-wide programs and
# check for leftovers, so their packages must not run at the same time.
# Then the Kubernetes manifests' module (deploy/kubetest), after the rest.
# Run by a user, it asks sudo once and runs as root; run as root (CI, a root
# shell in a container), it runs as it is.
ifeq ($(shell id -u),0)
test: deps lint check-generated race fuzz
	TCPCLOSE_REQUIRE_TOOLS=1 $(GO) test -p 1 -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory kubetest
	$(MAKE) --no-print-directory vmtest KERNEL=$(MATRIX_KERNELS)
	$(MAKE) --no-print-directory vmtest-arm64 ARM64_KERNELS=$(MATRIX_ARM64)
else
test:
	sudo env "PATH=$$PATH" $(MAKE) --no-print-directory test
endif

# Installs the missing Debian packages of DEB_BPF, DEB_LINT, DEB_TEST and
# DEB_VMTEST (needs root and apt).
deps:
	@bash .ci/deps

# The package lists, as shell assignments (read by .ci/deps).
deb-packages:
	@printf "DEB_BPF='%s'\nDEB_LINT='%s'\nDEB_TEST='%s'\nDEB_VMTEST='%s'\nDEB_BENCH='%s'\n" \
		"$(DEB_BPF)" "$(DEB_LINT)" "$(DEB_TEST)" "$(DEB_VMTEST)" "$(DEB_BENCH)"

# Measures the tracer against no tracer and its peers and rewrites
# BENCHMARKS.md (root; about 15 minutes). Installs the peers from Debian.
bench: build
	@bash .ci/deps bench
	$(GO) build -o bin/tcpclose-bench ./tools/tcpclose-bench
	$(GO) build -tags ringlib -o bin/tcpclose-trace-ringlib ./cmd/tcpclose-trace
	bin/tcpclose-bench -tracer $(BIN) -tracer-ringlib bin/tcpclose-trace-ringlib -o BENCHMARKS.md

# Boots Debian's linux-image-$(KERNEL).*-cloud-amd64-unsigned (downloaded with
# apt-get, cached in $(VMTEST_CACHE)) under qemu with software emulation and runs
# the whole end-to-end suite inside (root; about 5 minutes per kernel).
vmtest: vmtest-deps
	$(GO) run ./tools/tcpclose-vmtest run -kernels $(KERNEL) -cache $(VMTEST_CACHE) -o $(VMTEST_CACHE)/matrix.md

# The suite on 5.10, 6.1, 6.12 and the host's kernel (about 20 minutes); the matrix goes to
# $(VMTEST_CACHE)/matrix.md as well.
vmtest-matrix: vmtest-deps
	$(GO) run ./tools/tcpclose-vmtest run -kernels $(MATRIX_KERNELS) -host -cache $(VMTEST_CACHE) -o $(VMTEST_CACHE)/matrix.md

# The selftest on arm64 guests (root; about 2 to 3 minutes per kernel); the
# detections table also goes to $(VMTEST_CACHE)/matrix-arm64.md.
vmtest-arm64: vmtest-deps
	$(GO) run ./tools/tcpclose-vmtest run -kernels $(ARM64_KERNELS) -suite=false -cache $(VMTEST_CACHE) -o $(VMTEST_CACHE)/matrix-arm64.md

vmtest-deps: deps

clean:
	rm -rf bin
