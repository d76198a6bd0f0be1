//go:build !forcecompat

package collector

// forceCompat makes the tracer load the compat build on any kernel. Only a
// test build sets it (go build -tags forcecompat, compat_forced.go): the
// shipped binary picks the build from the kernel.
const forceCompat = false
