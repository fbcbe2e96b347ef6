package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// padded returns minimal followed by a YAML comment that makes it exactly size bytes.
func padded(t *testing.T, size int) []byte {
	t.Helper()
	head := minimal + "#"
	if size < len(head)+1 {
		t.Fatalf("size %d too small", size)
	}
	return []byte(head + strings.Repeat("x", size-len(head)-1) + "\n")
}

func TestLoadFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		// make writes the file and returns its path.
		make    func(t *testing.T) string
		wantErr string // "" means the file loads
	}{
		{
			name: "exactly the cap loads",
			make: func(t *testing.T) string {
				p := filepath.Join(dir, "cap.yaml")
				if err := os.WriteFile(p, padded(t, MaxFileBytes), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "one byte over the cap is refused with its size",
			make: func(t *testing.T) string {
				p := filepath.Join(dir, "over.yaml")
				if err := os.WriteFile(p, padded(t, MaxFileBytes+1), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: fmt.Sprintf("is %d bytes, over the cap of %d (4 MiB)", MaxFileBytes+1, MaxFileBytes),
		},
		{
			// 1 GiB that is never read: a sparse file takes no disk, and reading it would take
			// seconds and a gigabyte of memory.
			name: "a huge file is refused by its size",
			make: func(t *testing.T) string {
				p := filepath.Join(dir, "huge.yaml")
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := f.Truncate(1 << 30); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: fmt.Sprintf("is %d bytes, over the cap of %d (4 MiB)", 1<<30, MaxFileBytes),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t)
			c, err := Load(p, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if len(c.Pools) != 1 {
					t.Fatalf("pools = %+v, want the one of minimal", c.Pools)
				}
				return
			}
			if !errors.Is(err, ErrFileTooLarge) {
				t.Fatalf("Load error %v, want ErrFileTooLarge", err)
			}
			if !strings.HasPrefix(err.Error(), "config file "+p+" ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error %q, want the path %s and %q", err, p, tt.wantErr)
			}
		})
	}
}
