//go:build forcecompat

package collector

// forceCompat: this test build loads the compat build of the programs on
// any kernel, so that the tests run it where the kernel does not need it
// (GOFLAGS=-tags=forcecompat go test ./e2e/ builds the tracer the same way).
const forceCompat = true
