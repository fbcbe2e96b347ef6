package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
	"github.com/veloflux/veloflux/telemetry"
)

// appFromFile writes yaml to path and builds a node from it, released when the test ends; it
// returns the node and the configuration it was built with.
func appFromFile(t testing.TB, path, yaml string) (*app, *config.Config) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, level, err := telemetry.NewLogger(&testutil.LogBuffer{}, "info")
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(path, nil, cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.release)
	return a, cfg
}

// TestReloadRefusesOversizedConfig: a config file grown past config.MaxFileBytes is refused by
// the reload, naming the file, and the running configuration stays.
func TestReloadRefusesOversizedConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	small := testconfig.Config{Global: testconfig.Global{BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(""), AdminAddress: testconfig.Ptr("")}}.YAML(t)
	a, cfg := appFromFile(t, path, small)
	// The same file grown past the cap by a comment line: its size is the point, not its keys.
	big := small + "#" + strings.Repeat("x", config.MaxFileBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reload("test")
	a.mu.Lock()
	last, running := a.lastReload, a.cfg
	a.mu.Unlock()
	if last.OK || !strings.Contains(last.Error, "config file "+path+" is ") || !strings.Contains(last.Error, "over the cap") {
		t.Fatalf("last reload = %+v, want a refusal naming %s and the cap", last, path)
	}
	if running != cfg {
		t.Fatal("the refused file replaced the running configuration")
	}
}

func TestFileDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	over := bytes.Repeat([]byte("#"), config.MaxFileBytes+10)
	overLonger := append(bytes.Clone(over), '#')
	tests := []struct {
		name     string
		a, b     []byte
		wantSame bool
	}{
		{name: "same content", a: []byte("a: 1\n"), b: []byte("a: 1\n"), wantSame: true},
		{name: "changed content", a: []byte("a: 1\n"), b: []byte("a: 2\n")},
		{name: "oversized files that differ past the cap differ by size", a: over, b: overLonger},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			da, db := fileDigest(write("a", tt.a)), fileDigest(write("b", tt.b))
			if da == nil || db == nil {
				t.Fatal("no digest")
			}
			if same := bytes.Equal(da, db); same != tt.wantSame {
				t.Fatalf("digests equal = %v, want %v", same, tt.wantSame)
			}
		})
	}
	if d := fileDigest(filepath.Join(dir, "absent")); d != nil {
		t.Fatalf("digest of a missing file = %x, want nil", d)
	}
}
