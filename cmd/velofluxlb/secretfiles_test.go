package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// TestSecretFiles checks VFX_GOSSIP_KEY_FILE and VFX_STICKY_SECRET_FILE through the command
// line: the file's content reaches the configuration (validate accepts a key only it holds,
// and refuses a bad one read from the file), and conflicts and unreadable files stop the node.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("config.yaml", testconfig.Config{
		Global:  testconfig.Global{BindAddress: "127.0.0.1:0"},
		Cluster: &testconfig.Cluster{Enabled: true, BindAddress: "0.0.0.0:7946"},
	}.YAML(t))
	goodKey := write("gossip-key", "Tn8mrmNZxRPN9PrNJ5pKN2kVtn5pDHqXMrSN/w2ZMak=\n")
	badKey := write("bad-key", "not-base64!\n")
	secret := write("sticky", strings.Repeat("s", 40)+"\n")
	empty := write("empty", "\n")

	for _, tt := range []struct {
		name     string
		env      []string
		wantCode int
		wantErr  string
	}{
		{"no key: a non-loopback gossip address is refused", nil, 1, "gossip_key"},
		{"key from a file", []string{"VFX_GOSSIP_KEY_FILE=" + goodKey, "VFX_STICKY_SECRET_FILE=" + secret}, 0, ""},
		{"a bad key in the file is checked like one in the environment", []string{"VFX_GOSSIP_KEY_FILE=" + badKey}, 1, "cluster.gossip_key"},
		{"both forms", []string{"VFX_GOSSIP_KEY_FILE=" + goodKey, "VFX_GOSSIP_KEY=Tn8mrmNZxRPN9PrNJ5pKN2kVtn5pDHqXMrSN/w2ZMak="}, 1, "VFX_GOSSIP_KEY is set too"},
		{"missing file", []string{"VFX_GOSSIP_KEY_FILE=" + filepath.Join(dir, "nope")}, 1, "no such file"},
		{"empty file", []string{"VFX_STICKY_SECRET_FILE=" + empty}, 1, "is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCLI([]string{"validate", "-config", cfg}, tt.env, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("stderr %q does not say %q", stderr.String(), tt.wantErr)
			}
			if strings.Contains(stderr.String(), "not-base64") {
				t.Fatalf("stderr quotes the secret: %q", stderr.String())
			}
		})
	}
}
