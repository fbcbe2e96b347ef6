//go:build unix

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadFileSizeCapPipe reads the config from a named pipe, which has no size to check
// first: Load must stop reading just past the cap, not drain the writer.
func TestLoadFileSizeCapPipe(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mkfifo: %v", err)
		}
		t.Skipf("mkfifo: %v", err)
	}
	const total = 64 << 20
	written := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { written <- n }()
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		chunk := []byte(strings.Repeat("# padding\n", 6554)) // 64 KiB of YAML comments
		for n < total {
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				return // the reader closed the pipe: EPIPE
			}
		}
	}()
	_, err := Load(p, nil)
	if !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), "config file "+p+" is more than 4194304 bytes") {
		t.Fatalf("Load error %v, want ErrFileTooLarge naming %s", err, p)
	}
	// The writer stops at its first write after Load closed the pipe; a pipe buffers at most
	// a megabyte on Linux, so a reader that drained it would let it write all 64 MiB.
	if n := <-written; n >= total {
		t.Fatalf("the writer wrote all %d bytes: Load read past the cap", n)
	}
}
