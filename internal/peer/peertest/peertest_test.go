package peertest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := peertest.Binary(t, "sh", "apt-get install dash"); got == "" {
		t.Fatal("sh not found on PATH")
	}
	if got := peertest.Binary(t, "nhisentry-no-such-tool", "hint", filepath.Join(dir, "nope"), exe); got != exe {
		t.Fatalf("fallback path: got %q, want %q", got, exe)
	}
	// Missing everywhere: skipped outside CI. (Under CI=true the same call
	// fails, which a test cannot show without failing itself.)
	t.Setenv("CI", "")
	var inner *testing.T
	t.Run("missing", func(t *testing.T) {
		inner = t
		peertest.Binary(t, "nhisentry-no-such-tool", "hint")
		t.Error("Binary returned for a missing tool")
	})
	if !inner.Skipped() {
		t.Fatal("a missing tool did not skip the test")
	}
}
