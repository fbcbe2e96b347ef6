package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// closedAddr returns a 127.0.0.1 address nothing listens on any more.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	for _, code := range []int{200, 204, 404, 500, 503} {
		mux.HandleFunc(fmt.Sprintf("/status/%d", code), func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
		})
	}
	mux.HandleFunc("/redirect-to-broken", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status/500", http.StatusFound)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	// A body that never ends: a probe that read it all would hit its timeout.
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1024)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != r.URL.Query().Get("want") {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {})
	// Answers 200 only to the method named in the query, 405 otherwise; a body to show HEAD
	// gets none.
	mux.HandleFunc("/method", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != r.URL.Query().Get("want") {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name    string
		target  Target
		timeout time.Duration
		maxTook time.Duration // 0: no limit
		want    string
	}{
		{name: "200 is success", target: Target{Address: addr, Path: "/status/200"}},
		{name: "204 is success", target: Target{Address: addr, Path: "/status/204"}},
		{name: "3xx is success and not followed", target: Target{Address: addr, Path: "/redirect-to-broken"}},
		{name: "404 fails", target: Target{Address: addr, Path: "/status/404"}, want: "status 404"},
		{name: "500 fails", target: Target{Address: addr, Path: "/status/500"}, want: "status 500"},
		{name: "503 fails", target: Target{Address: addr, Path: "/status/503"}, want: "status 503"},
		{name: "slow backend times out", target: Target{Address: addr, Path: "/hang"}, timeout: 50 * time.Millisecond, want: "timeout"},
		// Reading the whole body would only end at the timeout.
		{name: "endless body is drained only in part", target: Target{Address: addr, Path: "/endless"}, timeout: 5 * time.Second, maxTook: 2 * time.Second},
		{name: "closed listener fails to dial", target: Target{Address: closedAddr(t), Path: "/"}, want: "dial tcp: connection refused"},
		{name: "host header defaults to address", target: Target{Address: addr, Path: "/host?want=" + addr}},
		{name: "host header override", target: Target{Address: addr, Path: "/host?want=svc.internal", Host: "svc.internal"}},
		{name: "path without leading slash", target: Target{Address: addr, Path: "healthz"}},
		{name: "invalid address", target: Target{Address: "bad host:80", Path: "/"}, want: "invalid target: "},
		{name: "method defaults to GET", target: Target{Address: addr, Path: "/method?want=GET"}},
		{name: "HEAD is sent", target: Target{Address: addr, Path: "/method?want=HEAD", Method: "HEAD"}},
		{name: "GET to a HEAD-only check fails", target: Target{Address: addr, Path: "/method?want=HEAD"}, want: "status 405"},
		{name: "custom token method", target: Target{Address: addr, Path: "/method?want=PROBE", Method: "PROBE"}},
		{name: "expect exact 200 refuses 204", target: Target{Address: addr, Path: "/status/204", ExpectStatus: "200"}, want: "status 204"},
		{name: "expect exact 200 passes 200", target: Target{Address: addr, Path: "/status/200", ExpectStatus: "200"}},
		{name: "expect 2xx refuses a redirect", target: Target{Address: addr, Path: "/redirect-to-broken", ExpectStatus: "200-299"}, want: "status 302"},
		{name: "expect list takes 404", target: Target{Address: addr, Path: "/status/404", ExpectStatus: "200-299,404"}},
		{name: "expect list still refuses 500", target: Target{Address: addr, Path: "/status/500", ExpectStatus: "200-299,404"}, want: "status 500"},
		{name: "expect 5xx range passes 503", target: Target{Address: addr, Path: "/status/503", ExpectStatus: "500-599"}},
		{name: "tcp connects to a listener", target: Target{Address: addr, Type: TypeTCP}},
		{name: "tcp ignores the HTTP answer", target: Target{Address: addr, Type: TypeTCP, Path: "/status/500"}},
		{name: "tcp to a closed port fails", target: Target{Address: closedAddr(t), Type: TypeTCP}, want: "dial tcp: connection refused"},
	}
	client := newDefaultClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			start := time.Now()
			spec, expect, problems := tt.target.normalized()
			if len(problems) > 0 {
				t.Fatalf("target %+v is invalid: %v", tt.target, problems)
			}
			got, _ := probe(ctx, client, spec, expect)
			took := time.Since(start)
			if tt.want == "" && got != "" || tt.want != "" && !strings.HasPrefix(got, tt.want) {
				t.Fatalf("probe(%+v) = %q, want %q", tt.target, got, tt.want)
			}
			if tt.maxTook > 0 && took > tt.maxTook {
				t.Fatalf("probe took %s, want under %s", took, tt.maxTook)
			}
		})
	}
}

// TestProbeGivenClient checks that a caller's client is used as is, here one that follows
// redirects and so judges the redirect target.
func TestProbeGivenClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/broken", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	spec, expect, _ := Target{Address: srv.Listener.Addr().String(), Path: "/redirect"}.normalized()
	got, _ := probe(t.Context(), client, spec, expect)
	if got != "status 502" {
		t.Fatalf("probe with redirect-following client = %q, want %q", got, "status 502")
	}
}

// TestProbeTCPHoldsNoConnection checks that a tcp check closes what it opened: the
// backend sees the connection end.
func TestProbeTCPHoldsNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			closed <- err
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		closed <- err
	}()
	if got, _ := probeTCP(t.Context(), ln.Addr().String()); got != "" {
		t.Fatalf("probeTCP = %q, want success", got)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("backend read %v after the probe, want EOF (connection closed by the checker)", err)
		}
	case <-time.After(testutil.Timeout()):
		t.Fatal("backend never saw the connection")
	}
}

func TestFailureReason(t *testing.T) {
	long := errors.New(strings.Repeat("x", 500))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "connection refused",
			err: &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{
				Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED},
			}},
			want: "dial tcp: connection refused",
		},
		{
			name: "unknown host",
			err: &url.Error{Op: "Get", URL: "http://nope.invalid/", Err: &net.OpError{
				Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true},
			}},
			want: "dial tcp: lookup nope.invalid: no such host",
		},
		{
			name: "reset while reading",
			err: &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{
				Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET},
			}},
			want: "read tcp: connection reset by peer",
		},
		{
			name: "deadline",
			err:  &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: context.DeadlineExceeded},
			want: "timeout",
		},
		{
			name: "closed without response",
			err:  &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: io.EOF},
			want: "connection closed before response",
		},
		{
			name: "long error is cut",
			err:  &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: long},
			want: strings.Repeat("x", maxReason-3) + "...",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failureReason(tt.err); got != tt.want {
				t.Fatalf("failureReason() = %q, want %q", got, tt.want)
			}
		})
	}
}
