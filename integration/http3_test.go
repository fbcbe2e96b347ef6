//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestHTTP3WithNgtcp2Client drives the binary's HTTP/3 side with a client that is not Go's:
// ngtcp2's gtlsclient (Debian ngtcp2-client) does a GET and a POST with a body, and the
// backend sees both with the client's address and https.
func TestHTTP3WithNgtcp2Client(t *testing.T) {
	client, err := exec.LookPath("gtlsclient")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gtlsclient (ngtcp2-client) missing in CI: `make quic-tools` must install it: %v", err)
		}
		t.Skip("gtlsclient not installed; run make quic-tools")
	}
	var mu sync.Mutex
	var seen []string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %q proto=%s for=%s", r.Method, r.URL.Path, body,
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For")))
		mu.Unlock()
		fmt.Fprintf(w, "h3 ok %s %d", r.Method, len(body))
	}))
	t.Cleanup(be.Close)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	n := startNode(t, tlsNode(strings.TrimPrefix(be.URL, "http://"), certFile, keyFile).YAML(t))
	addr := n.tlsListener()
	host, port, _ := strings.Cut(addr, ":")
	payload := filepath.Join(dir, "payload")
	if err := os.WriteFile(payload, []byte("hello over quic"), 0o600); err != nil {
		t.Fatal(err)
	}
	download := filepath.Join(dir, "out")
	if err := os.Mkdir(download, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		args = append([]string{"--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump", "--timeout=30s", "--download=" + download}, args...)
		cmd := exec.Command(client, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gtlsclient %v: %v\n%s", args, err, lastLines(string(out), 20))
		}
	}
	run(host, port, "https://"+addr+"/hello")
	run("-m", "POST", "-d", payload, host, port, "https://"+addr+"/upload")
	for name, want := range map[string]string{"hello": "h3 ok GET 0", "upload": "h3 ok POST 15"} {
		b, err := os.ReadFile(filepath.Join(download, name))
		if err != nil || string(b) != want {
			t.Fatalf("download %s: %q (%v), want %q", name, b, err, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`GET /hello "" proto=https for=127.0.0.1`,
		`POST /upload "hello over quic" proto=https for=127.0.0.1`,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("backend saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
