#!/usr/bin/env bash
# Builds the BPF object and its Go bindings inside a minimal Debian 12 root
# that holds only the packages the Makefile declares in DEB_BPF
# (plus the host's Go toolchain and module cache, bound in read-only where it
# can), and compares them byte for byte with bpf/ of this tree. A package the
# build needs but the list lacks makes the build fail here, whatever the host
# has installed by hand; a different compiler or header makes the bytes differ.
#
# The root is made with debootstrap from the host's Debian archive and cached,
# keyed by the suite, the archive and the package list, in
# $TCPCLOSE_CLEANROOT_CACHE (default /var/cache/tcpclose-trace/cleanroot): the
# first run takes a few minutes, later ones seconds. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=bookworm
cache=${TCPCLOSE_CLEANROOT_CACHE:-/var/cache/tcpclose-trace/cleanroot}
GO=${GO:-go}

fail() { echo "cleanroot: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || fail "debootstrap is missing: run make deps"

mapfile -t packages < <(bash .ci/deps --list bpf)
[ ${#packages[@]} -gt 0 ] || fail "no package in DEB_BPF of the Makefile"

# The archive the host's apt uses for the suite (this machine may reach only
# its own mirror): the first Packages index of the suite that apt knows.
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' |
	awk -v s="$suite" '$2 == s { print $1; exit }')
[ -n "$mirror" ] || fail "apt knows no archive for $suite (run apt-get update)"

key=$(printf '%s\n' "$suite" "$mirror" "${packages[@]}" | sha256sum | cut -c1-16)
root=$cache/$key
if [ ! -e "$root/.complete" ]; then
	echo "cleanroot: making a minimal $suite root with: ${packages[*]}"
	mkdir -p "$cache"
	rm -rf "$root.tmp"
	debootstrap --variant=minbase "$suite" "$root.tmp" "$mirror" >"$cache/$key.log" 2>&1 ||
		fail "debootstrap failed, see $cache/$key.log"
	cp /etc/resolv.conf "$root.tmp/etc/resolv.conf"
	# Archive snapshots carry Release files past their Valid-Until date.
	echo 'Acquire::Check-Valid-Until "false";' >"$root.tmp/etc/apt/apt.conf.d/99snapshot"
	chroot "$root.tmp" apt-get update -qq >>"$cache/$key.log" 2>&1 ||
		fail "apt-get update in the root failed, see $cache/$key.log"
	DEBIAN_FRONTEND=noninteractive chroot "$root.tmp" apt-get install -y -qq --no-install-recommends \
		"${packages[@]}" >>"$cache/$key.log" 2>&1 ||
		fail "installing ${packages[*]} in the root failed, see $cache/$key.log"
	chroot "$root.tmp" apt-get clean
	mkdir -p "$root.tmp/usr/local/go" "$root.tmp/gomodcache"
	touch "$root.tmp/.complete"
	# Roots of earlier package lists are replaced, not kept.
	find "$cache" -mindepth 1 -maxdepth 1 -name '????????????????' ! -name "$key" -exec rm -rf {} +
	mv "$root.tmp" "$root"
fi

# Everything the build may read is fetched on the host first: the root has no
# module proxy.
$GO mod download
goroot=$($GO env GOROOT)
modcache=$($GO env GOMODCACHE)

# A fresh copy of this tree (tracked and new files, not .git, caches or builds).
rm -rf "$root/src"
mkdir -p "$root/src"
git ls-files -z --cached --others --exclude-standard | grep -zv '^\.cache/' |
	tar -C . --null -T - -cf - | tar -C "$root/src" -xf -

# Private mounts: they vanish with the process, however it ends.
unshare --mount --propagation private bash -euo pipefail -c '
	root=$1 goroot=$2 modcache=$3
	mount --bind "$goroot" "$root/usr/local/go" && mount -o remount,bind,ro "$root/usr/local/go"
	mount --bind "$modcache" "$root/gomodcache"
	mount -t proc proc "$root/proc"
	mount --bind /dev "$root/dev"
	exec chroot "$root" env -i PATH=/usr/local/go/bin:/usr/bin:/bin HOME=/root \
		GOCACHE=/tmp/gocache GOMODCACHE=/gomodcache GOPROXY=off GOFLAGS=-mod=mod \
		GOTOOLCHAIN=local GOTELEMETRY=off CGO_ENABLED=0 \
		make -C /src --no-print-directory generate
' cleanroot "$root" "$goroot" "$modcache" || fail "make generate failed in the clean $suite root (a build dependency missing from DEB_BPF in the Makefile?)"

status=0
for f in bpf/*_bpfel.o bpf/*_bpfel.go; do
	if ! cmp -s "$root/src/$f" "$f"; then
		echo "cleanroot: $f differs from the one built in the clean $suite root: run make generate with the packages of DEB_BPF and commit" >&2
		status=1
	fi
done
rm -rf "$root/src"
[ $status = 0 ] && echo "cleanroot: bpf/ is byte-identical to a build in a clean $suite root (${packages[*]})"
exit $status
