//go:build unix

package localerr_test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/veloflux/veloflux/internal/localerr"
)

// exhaustEnv makes the test binary run TestRealEMFILEChild for TestRealEMFILE.
const exhaustEnv = "VELOFLUX_LOCALERR_EXHAUST_FDS"

// TestRealEMFILE provokes a real EMFILE: a child process (this test binary) lowers its
// open-files limit, opens files until the limit is reached, dials a listener directly and
// through net/http, and checks Is on what it gets. A child, so that nothing else in this
// process ever runs without file descriptors.
func TestRealEMFILE(t *testing.T) {
	if os.Getenv(exhaustEnv) != "" {
		t.Skip("in the child")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealEMFILEChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), exhaustEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestRealEMFILEChild") {
		t.Fatalf("child did not run its test:\n%s", out)
	}
	t.Logf("child:\n%s", out)
}

func TestRealEMFILEChild(t *testing.T) {
	if os.Getenv(exhaustEnv) == "" {
		t.Skip("runs only as TestRealEMFILE's child")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	low := old
	low.Cur = 64
	if low.Cur > old.Max {
		low.Cur = old.Max
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	var files []*os.File
	var dialErr, httpErr error
	func() {
		// Restore before anything can fail the test: the test framework needs descriptors too.
		defer func() {
			for _, f := range files {
				f.Close()
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Errorf("restore rlimit: %v", err)
			}
		}()
		for range low.Cur + 1 {
			f, err := os.Open(os.DevNull)
			if err != nil {
				if !errors.Is(err, syscall.EMFILE) {
					t.Errorf("open %s: %v, want EMFILE", os.DevNull, err)
				}
				break
			}
			files = append(files, f)
		}
		var conn net.Conn
		if conn, dialErr = net.Dial("tcp", addr); dialErr == nil {
			conn.Close()
		}
		var resp *http.Response
		if resp, httpErr = client.Get("http://" + addr + "/"); httpErr == nil {
			resp.Body.Close()
		}
	}()
	for _, c := range []struct {
		name string
		err  error
	}{{"net.Dial", dialErr}, {"http.Client.Get", httpErr}} {
		if c.err == nil {
			t.Errorf("%s succeeded without free descriptors", c.name)
			continue
		}
		if !errors.Is(c.err, syscall.EMFILE) {
			t.Errorf("%s: %v, want EMFILE", c.name, c.err)
		}
		if !localerr.Is(c.err) {
			t.Errorf("Is(%v) = false for a real EMFILE from %s", c.err, c.name)
		}
		t.Logf("%s: %v", c.name, c.err)
	}
}
