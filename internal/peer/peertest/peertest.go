// Package peertest is the one rule every integration test follows for a
// real server it needs: without it the test is skipped on a laptop, and
// fails under CI=true, so nothing passes by skipping.
package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Unavailable skips t, or fails it when CI=true, saying what is missing and
// how to get it.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("no %s: %v", what, err)
}

// Binary finds the executable name on PATH, or at one of the other paths
// (for sbin folders not on a user's PATH); otherwise it is Unavailable,
// with hint saying how to install it.
func Binary(t testing.TB, name, hint string, paths ...string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, p := range paths {
		if st, serr := os.Stat(p); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Unavailable(t, name, fmt.Errorf("%w (%s)", err, hint))
	return ""
}
