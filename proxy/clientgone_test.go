package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// A client that hangs up in the middle of a response body is recorded as 499 in the access
// log and in veloflux_requests_total, not as the 200 that went out with the head, on the
// standard server (net/http and the reverse proxy) and on the HTTP/1.1 fast path, with a
// body of known length (spliced on the fast path) and a chunked one.
func TestClientGoneMidResponse(t *testing.T) {
	const first, rest = 64 << 10, 16 << 20
	for _, fast := range []bool{false, true} {
		for _, chunked := range []bool{false, true} {
			name := map[bool]string{false: "standard", true: "fast"}[fast] + "/" + map[bool]string{false: "length", true: "chunked"}[chunked]
			t.Run(name, func(t *testing.T) {
				sent := make(chan struct{}, 1)
				release := make(chan struct{})
				addr := oneShotBackend(t, func(c *net.TCPConn, _ *bufio.Reader) {
					w := bufio.NewWriter(c)
					if chunked {
						_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
					} else {
						_, _ = fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", first+rest)
					}
					// The body's start, then the rest once the client has gone: a backend
					// writing slowly.
					chunk := make([]byte, 32<<10)
					for n := 0; n < first+rest; n += len(chunk) {
						if n == first {
							sent <- struct{}{}
							<-release
						}
						if chunked {
							_, _ = fmt.Fprintf(w, "%x\r\n", len(chunk))
						}
						_, _ = w.Write(chunk)
						if chunked {
							_, _ = io.WriteString(w, "\r\n")
						}
						if err := w.Flush(); err != nil {
							return // the proxy closed its connection
						}
					}
					if chunked {
						_, _ = io.WriteString(w, "0\r\n\r\n")
					}
					_ = w.Flush()
				})
				logs := &testutil.LogBuffer{}
				opts := Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))}
				snap := onePoolSnapshot("round_robin", false, member("b0", addr, 1))
				var tp *testProxy
				if fast {
					tp = startFastProxy(t, opts, addr)
				} else {
					reg := prometheus.NewRegistry()
					opts.Registerer = reg
					p, err := New(DefaultConfig(), opts)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(p.Close)
					if err := p.Apply(snap); err != nil {
						t.Fatal(err)
					}
					srv := httptest.NewServer(p)
					t.Cleanup(srv.Close)
					tp = &testProxy{Proxy: p, reg: reg, url: srv.URL}
				}

				c, err := net.Dial("tcp", strings.TrimPrefix(tp.url, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				if _, err := io.ReadFull(resp.Body, make([]byte, first/2)); err != nil {
					t.Fatalf("reading the body's start: %v", err)
				}
				testutil.Receive(t, sent, "the backend to send the body's start")
				_ = c.Close()
				close(release)

				var line map[string]any
				testutil.Eventually(t, "the access log line", func() bool {
					if l := logs.Find("access"); len(l) == 1 {
						line = l[0]
						return true
					}
					return false
				})
				if line["status_code"] != float64(statusClientClosed) {
					t.Errorf("access log %v, want status_code %d", line, statusClientClosed)
				}
				if b, _ := line["bytes"].(float64); b < first/2 || b >= first+rest {
					t.Errorf("access log bytes %v, want what went out before the client left", line["bytes"])
				}
				labels := map[string]string{"method": "GET", "pool": "web"}
				labels["code"] = "499"
				if n := counterValue(t, tp.reg, "veloflux_requests_total", labels); n != 1 {
					t.Errorf("veloflux_requests_total{code=\"499\"} = %v, want 1", n)
				}
				labels["code"] = "200"
				if n := counterValue(t, tp.reg, "veloflux_requests_total", labels); n != 0 {
					t.Errorf("veloflux_requests_total{code=\"200\"} = %v, want 0", n)
				}
				testutil.Eventually(t, "the proxy to finish the request", func() bool { return tp.InFlight() == 0 })
			})
		}
	}
}
