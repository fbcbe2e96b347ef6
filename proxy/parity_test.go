package proxy

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/proxy/ratelimit"
)

// protocolClients are HTTPS clients that each speak exactly one protocol, so a test can show
// that a behaviour does not depend on it.
var protocolClients = []struct {
	proto string
	major int
	new   func(t *testing.T, roots *tls.Config) *http.Client
}{
	{"HTTP/1.1", 1, func(t *testing.T, cfg *tls.Config) *http.Client {
		tr := &http.Transport{TLSClientConfig: cfg, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP1(true)
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}},
	{"HTTP/2", 2, func(t *testing.T, cfg *tls.Config) *http.Client {
		tr := &http.Transport{TLSClientConfig: cfg, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP2(true)
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}},
	{"HTTP/3", 3, h3Client},
}

// serveTLS serves p on a TLS listener with HTTP/3 and returns its https base URL and the
// client TLS configuration that trusts it.
func serveTLS(t *testing.T, p *Proxy) (string, *tls.Config) {
	t.Helper()
	cfg, roots := tlsServerConfig(t)
	cfg.HTTP3 = true
	s, _, _ := runServer(t, cfg, p)
	return "https://" + s.Addrs()[1].String(), &tls.Config{RootCAs: roots}
}

// TestEveryProtocolBehavesAlike sends the same requests over HTTP/1.1, HTTP/2 and HTTP/3 on
// the TLS listener: the client's address, geo routing, sticky sessions and the rate limit
// must not depend on the protocol. The client does not send X-Forwarded-For, so each check
// relies on the address the listener saw (a UDP peer for HTTP/3).
func TestEveryProtocolBehavesAlike(t *testing.T) {
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, pc := range protocolClients {
		t.Run(pc.proto, func(t *testing.T) {
			checkProto := func(t *testing.T, got int) {
				t.Helper()
				if got != pc.major {
					t.Fatalf("answered over HTTP/%d, want %s", got, pc.proto)
				}
			}

			t.Run("geo routing from the client's address", func(t *testing.T) {
				w := newGeoWorld(t)
				loc := newFakeLocator()
				loc.places[loopback] = fakePlace{[]string{"us", "eu", "ap"}, "US"}
				cfg := DefaultConfig()
				cfg.AccessLog = false
				p := newProxy(t, cfg, Options{Locator: loc}, w.snapshot("nearest", false, nil))
				url, roots := serveTLS(t, p)
				c := pc.new(t, roots)
				seen := map[string]bool{}
				for range 6 {
					r, major := sendProto(t, c, url+"/", nil)
					checkProto(t, major)
					if r.status != http.StatusOK {
						t.Fatalf("status %d, body %q", r.status, r.body)
					}
					seen[r.body] = true
				}
				if got := sortedKeys(seen); !slices.Equal(got, []string{"us1", "us2"}) {
					t.Fatalf("served by %v, want the us region [us1 us2]", got)
				}
				if got := loc.lastAsked(t); got != loopback {
					t.Fatalf("the locator was asked about %v, want the peer %v", got, loopback)
				}
				seenBy := w.backends["us1"].last(t)
				if seenBy.Header.Get("X-Forwarded-For") != "127.0.0.1" || seenBy.Header.Get("X-Forwarded-Proto") != "https" {
					t.Fatalf("backend saw X-Forwarded-For %q, X-Forwarded-Proto %q", seenBy.Header.Get("X-Forwarded-For"), seenBy.Header.Get("X-Forwarded-Proto"))
				}
			})

			t.Run("sticky session", func(t *testing.T) {
				_, snap := stickyPool(t, "round_robin", 3)
				cfg := DefaultConfig()
				cfg.Sticky.Secret = testSecret
				cfg.Sticky.Secure = true
				p := newProxy(t, cfg, Options{}, snap)
				url, roots := serveTLS(t, p)
				c := pc.new(t, roots)
				first, major := sendProto(t, c, url+"/", nil)
				checkProto(t, major)
				cookie := stickyCookie(first, "vf_session")
				if cookie == nil || !cookie.Secure || !cookie.HttpOnly {
					t.Fatalf("first answer's Set-Cookie %q: want a Secure, HttpOnly vf_session", first.header.Values("Set-Cookie"))
				}
				for i := range 6 {
					r, _ := sendProto(t, c, url+"/", http.Header{"Cookie": {"vf_session=" + cookie.Value}})
					if r.status != http.StatusOK || r.body != first.body {
						t.Fatalf("request %d with the cookie: %d from %q, want 200 from %q", i+1, r.status, r.body, first.body)
					}
					if len(r.header.Values("Set-Cookie")) != 0 {
						t.Fatalf("request %d with a valid cookie got a new one: %q", i+1, r.header.Values("Set-Cookie"))
					}
				}
			})

			t.Run("rate limit per client", func(t *testing.T) {
				b := newBackend(t, "app", nil)
				cfg := DefaultConfig()
				cfg.RateLimit = ratelimit.Config{RequestsPerSecond: 0.01, Burst: 2} // no refill within the test
				reg := prometheus.NewRegistry()
				p := newProxy(t, cfg, Options{Registerer: reg}, onePoolSnapshot("round_robin", false, member("app", b.addr(), 1)))
				url, roots := serveTLS(t, p)
				c := pc.new(t, roots)
				var got []int
				var last response
				for range 3 {
					r, major := sendProto(t, c, url+"/", nil)
					checkProto(t, major)
					got, last = append(got, r.status), r
				}
				if !slices.Equal(got, []int{200, 200, 429}) {
					t.Fatalf("statuses %v, want [200 200 429]", got)
				}
				checkErrorAnswer(t, last, http.StatusTooManyRequests, "too many requests")
				if s, err := strconv.Atoi(last.header.Get("Retry-After")); err != nil || s < 1 {
					t.Fatalf("Retry-After = %q, want whole seconds >= 1", last.header.Get("Retry-After"))
				}
				if n := counterValue(t, reg, "veloflux_rate_limited_total", nil); n != 1 {
					t.Fatalf("veloflux_rate_limited_total = %v, want 1", n)
				}
				if b.hits() != 2 {
					t.Fatalf("backend saw %d requests, want 2", b.hits())
				}
			})
		})
	}
}

// sendProto is send for a GET that also returns the protocol major version of the answer.
func sendProto(t *testing.T, c *http.Client, url string, hdr http.Header) (response, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}, resp.ProtoMajor
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
