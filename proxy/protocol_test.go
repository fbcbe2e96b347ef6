package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/testutil"
)

// Kinds of protocol test backends.
const (
	kindPlain   = "plain"    // HTTP/1.1 over TCP
	kindTLS     = "tls"      // HTTP/1.1 over TLS (a test CA's certificate)
	kindTLSH2   = "tls-h2"   // HTTP/1.1 and HTTP/2 over TLS (a test CA's certificate), h2 offered first
	kindH2C     = "h2c"      // HTTP/2 with prior knowledge, and HTTP/1.1, over TCP
	okBodyReply = "answered" // what a protoBackend without handler answers
)

// protoBackend is a real server of one kind that records how each request reached it.
type protoBackend struct {
	srv   *httptest.Server
	ln    *trackListener
	roots *x509.CertPool // trusts the certificate of a TLS backend

	mu         sync.Mutex
	hits       int
	protoMajor int
	tls        bool
	serverName string // SNI the client sent, "" without TLS or for an IP address
	host       string
}

// newProtoBackend starts a backend of kind that records each request and then runs h; a
// nil h echoes the request body, or answers okBodyReply when there is none.
func newProtoBackend(t *testing.T, kind string, h http.HandlerFunc) *protoBackend {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if len(body) == 0 {
				body = []byte(okBodyReply)
			}
			_, _ = w.Write(body)
		}
	}
	b := &protoBackend{}
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits++
		b.protoMajor = r.ProtoMajor
		b.tls = r.TLS != nil
		b.host = r.Host
		if r.TLS != nil {
			b.serverName = r.TLS.ServerName
		}
		b.mu.Unlock()
		h(w, r)
	})
	b.srv = httptest.NewUnstartedServer(handler)
	if kind == kindH2C {
		b.srv.Config.Protocols = h2cProtocols()
	}
	b.ln = &trackListener{Listener: b.srv.Listener}
	b.srv.Listener = b.ln
	switch kind {
	case kindPlain, kindH2C:
		b.srv.Start()
	case kindTLS, kindTLSH2:
		cert, roots := serverCert(t) // valid for 127.0.0.1 only
		b.roots = roots
		b.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		b.srv.EnableHTTP2 = kind == kindTLSH2
		// Handshakes the proxy aborts on purpose (unknown authority) would be logged here.
		b.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		b.srv.StartTLS()
	default:
		t.Fatalf("unknown backend kind %q", kind)
	}
	t.Cleanup(b.srv.Close)
	return b
}

// h2cProtocols is what an h2c backend serves: HTTP/2 with prior knowledge, and HTTP/1.1.
func h2cProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// trackListener counts the connections it accepted that are still open on the server side.
type trackListener struct {
	net.Listener
	open atomic.Int64
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &trackConn{Conn: c, l: l}, nil
}

type trackConn struct {
	net.Conn
	l    *trackListener
	once sync.Once
}

func (c *trackConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// trustBackendRoots makes the proxy's verifying https transport trust roots instead of the
// system pool, so tests can reach a verified backend. Call it before the first request.
func trustBackendRoots(p *Proxy, roots *x509.CertPool) {
	p.transports.https.TLSClientConfig.RootCAs = roots
}

func (b *protoBackend) addr() string { return b.srv.Listener.Addr().String() }

// seen returns the number of requests and how the last one arrived.
func (b *protoBackend) seen() (hits, protoMajor int, tls bool, serverName, host string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits, b.protoMajor, b.tls, b.serverName, b.host
}

func schemeBackend(id, addr, scheme string, skipVerify bool) discovery.Backend {
	return discovery.Backend{ID: id, Address: addr, Weight: 1, Scheme: scheme, TLSSkipVerify: skipVerify}
}

// localhostAddr names the backend by "localhost" instead of its IP, so TLS sends a server name.
func localhostAddr(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	return net.JoinHostPort("localhost", port)
}

func TestBackendProtocols(t *testing.T) {
	tests := []struct {
		name       string
		kind       string
		scheme     string
		skipVerify bool
		trusted    bool // the verifying transport trusts the backend's certificate
		localhost  bool // address the backend as localhost:port
		wantScheme string
		status     int
		wantProto  int // HTTP major version the backend saw; 0: the request must not reach it
		wantTLS    bool
		wantSNI    string
		logError   string // in the access log's error field
	}{
		{name: "empty scheme is HTTP/1.1", kind: kindPlain, scheme: "", wantScheme: "http", status: http.StatusOK, wantProto: 1},
		{name: "http", kind: kindPlain, scheme: "http", wantScheme: "http", status: http.StatusOK, wantProto: 1},
		{
			name: "h2c speaks HTTP/2 without TLS", kind: kindH2C, scheme: "h2c", wantScheme: "h2c",
			status: http.StatusOK, wantProto: 2,
		},
		{
			name: "https without verification", kind: kindTLS, scheme: "https", skipVerify: true, wantScheme: "https",
			status: http.StatusOK, wantProto: 1, wantTLS: true,
		},
		{
			name: "https negotiates HTTP/2 when the backend offers it", kind: kindTLSH2, scheme: "https", skipVerify: true,
			wantScheme: "https", status: http.StatusOK, wantProto: 2, wantTLS: true,
		},
		{
			name: "https sends the backend host as server name, not the client's Host", kind: kindTLS, scheme: "https",
			skipVerify: true, localhost: true, wantScheme: "https", status: http.StatusOK, wantProto: 1, wantTLS: true,
			wantSNI: "localhost",
		},
		{
			name: "https with verification accepts a trusted certificate", kind: kindTLSH2, scheme: "https", trusted: true,
			wantScheme: "https", status: http.StatusOK, wantProto: 2, wantTLS: true,
		},
		{
			name: "https with verification refuses a certificate of an unknown authority", kind: kindTLS, scheme: "https",
			wantScheme: "https", status: http.StatusBadGateway, logError: "unknown authority",
		},
		{
			// The certificate names 127.0.0.1; the backend is addressed as localhost.
			name: "https with verification checks the certificate against the backend host", kind: kindTLS, scheme: "https",
			trusted: true, localhost: true, wantScheme: "https", status: http.StatusBadGateway, logError: "wanted to match localhost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newProtoBackend(t, tt.kind, nil)
			addr := be.addr()
			if tt.localhost {
				addr = localhostAddr(t, addr)
			}
			logs := &testutil.LogBuffer{}
			tp := startProxy(t, DefaultConfig(), Options{AccessLogger: slog.New(slog.NewJSONHandler(logs, nil))},
				onePoolSnapshot("round_robin", false, schemeBackend("b", addr, tt.scheme, tt.skipVerify)))
			if tt.trusted {
				trustBackendRoots(tp.Proxy, be.roots)
			}

			const body = "sent through the proxy"
			r := send(t, newClient(t), http.MethodPost, tp.url+"/echo", "app.example.com", nil, body)
			hits, proto, overTLS, sni, host := be.seen()
			if tt.wantProto == 0 {
				checkErrorAnswer(t, r, tt.status, errBackend.Error())
				if hits != 0 {
					t.Fatalf("backend answered %d requests, want none", hits)
				}
			} else {
				if r.status != tt.status || r.body != body {
					t.Fatalf("answer %d %q, want %d %q", r.status, r.body, tt.status, body)
				}
				if proto != tt.wantProto || overTLS != tt.wantTLS {
					t.Fatalf("backend saw HTTP/%d, TLS %v; want HTTP/%d, TLS %v", proto, overTLS, tt.wantProto, tt.wantTLS)
				}
				if host != "app.example.com" {
					t.Fatalf("backend saw Host %q, want the client's app.example.com", host)
				}
				if sni != tt.wantSNI {
					t.Fatalf("backend saw server name %q, want %q", sni, tt.wantSNI)
				}
			}
			if tt.logError != "" {
				testutil.Eventually(t, "the access log line", func() bool { return strings.Contains(logs.String(), `"msg":"access"`) })
				if l := logs.String(); !strings.Contains(l, tt.logError) {
					t.Fatalf("access log %q does not name %q", l, tt.logError)
				}
			}

			st := backendStatus(t, tp.Proxy, "web", "b")
			if st.Scheme != tt.wantScheme {
				t.Fatalf("status scheme %q, want %q", st.Scheme, tt.wantScheme)
			}
			js, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			if want := `"scheme":"` + tt.wantScheme + `"`; !strings.Contains(string(js), want) {
				t.Fatalf("status JSON %s lacks %s", js, want)
			}
		})
	}
}

// TestCloseReleasesIdleConnectionsOfEveryProtocol: Close must reach every transport, or a
// stopped proxy keeps backend connections (and their goroutines) open until they time out.
func TestCloseReleasesIdleConnectionsOfEveryProtocol(t *testing.T) {
	tests := []struct {
		name, kind, scheme string
		skipVerify         bool
	}{
		{"http", kindPlain, "http", false},
		{"https verified", kindTLS, "https", false},
		{"https verified over HTTP/2", kindTLSH2, "https", false},
		{"https without verification", kindTLS, "https", true},
		{"h2c", kindH2C, "h2c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newProtoBackend(t, tt.kind, nil)
			tp := startProxy(t, DefaultConfig(), Options{},
				onePoolSnapshot("round_robin", false, schemeBackend("b", be.addr(), tt.scheme, tt.skipVerify)))
			trustBackendRoots(tp.Proxy, be.roots)
			if r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK {
				t.Fatalf("answer %d %q", r.status, r.body)
			}
			if n := be.ln.open.Load(); n < 1 {
				t.Fatalf("backend has %d open connections after a request, want the pooled one", n)
			}
			tp.Close()
			testutil.Eventually(t, "Close to close the pooled backend connection", func() bool { return be.ln.open.Load() == 0 })
		})
	}
}

// TestH2CBackendMultiplexes: requests in flight to an h2c backend share one connection, and a
// new one opens only when the open ones carry as many streams as the backend allows.
func TestH2CBackendMultiplexes(t *testing.T) {
	tests := []struct {
		name       string
		maxStreams int // the backend's SETTINGS_MAX_CONCURRENT_STREAMS; 0: net/http's 250
		wantConns  int64
	}{
		{"one connection under the stream limit", 0, 1},
		{"a second connection at the stream limit", 3, 2},
	}
	const inFlight = 6
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan string, inFlight) // the client address of each request
			release := make(chan struct{})
			be := newProtoBackend(t, kindH2C, func(w http.ResponseWriter, r *http.Request) {
				arrived <- r.RemoteAddr
				<-release
				_, _ = io.WriteString(w, okBodyReply)
			})
			if tt.maxStreams > 0 {
				be.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: tt.maxStreams}
			}
			tp := startProxy(t, DefaultConfig(), Options{},
				onePoolSnapshot("round_robin", false, schemeBackend("b", be.addr(), "h2c", false)))
			c := newClient(t)
			answers := make([]<-chan response, inFlight)
			for i := range answers {
				answers[i] = sendAsync(t, c, tp.url+"/", nil)
			}
			carrying := map[string]bool{} // the connections carrying a request
			for range inFlight {
				select {
				case addr := <-arrived:
					carrying[addr] = true
				case <-time.After(testutil.Timeout()):
					close(release)
					t.Fatal("timed out waiting for the requests to reach the backend")
				}
			}
			conns := int64(len(carrying))
			open := be.ln.open.Load()
			close(release)
			for i, ch := range answers {
				if r := testutil.Receive(t, ch, "an answer"); r.status != http.StatusOK || r.body != okBodyReply {
					t.Fatalf("request %d: answer %d %q", i, r.status, r.body)
				}
			}
			if _, proto, _, _, _ := be.seen(); proto != 2 {
				t.Fatalf("backend saw HTTP/%d, want HTTP/2", proto)
			}
			if conns != tt.wantConns {
				t.Fatalf("%d requests in flight on %d backend connections (%d open), want %d", inFlight, conns, open, tt.wantConns)
			}
		})
	}
}

// TestBackendTimeoutEveryProtocol: each protocol's transport enforces ResponseHeaderTimeout,
// h2c's included.
func TestBackendTimeoutEveryProtocol(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tr := DefaultTransportConfig()
	tr.ResponseHeaderTimeout = 100 * time.Millisecond
	tests := []struct {
		name, kind, scheme string
	}{
		{"http", kindPlain, "http"},
		{"https", kindTLSH2, "https"},
		{"h2c", kindH2C, "h2c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newProtoBackend(t, tt.kind, slow)
			tp := startProxy(t, DefaultConfig(), Options{Transport: tr},
				onePoolSnapshot("round_robin", false, schemeBackend("b", be.addr(), tt.scheme, true)))
			start := time.Now()
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			checkErrorAnswer(t, r, http.StatusGatewayTimeout, errTimeout.Error())
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("answer took %v, want about the 100ms header timeout", d)
			}
			// The request was sent, but the backend's handler may start only after the proxy
			// gave up on it, on a busy machine: wait for it, then check it came once.
			testutil.Eventually(t, "the backend to see the request", func() bool {
				hits, _, _, _, _ := be.seen()
				return hits > 0
			})
			if hits, _, _, _, _ := be.seen(); hits != 1 {
				t.Fatalf("backend got %d requests, want 1", hits)
			}
		})
	}
}

// TestTLSHandshakeTimeout: an https backend that accepts connections and never answers the
// handshake costs at most the dial timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	tr := DefaultTransportConfig()
	tr.DialTimeout = 200 * time.Millisecond
	tp := startProxy(t, DefaultConfig(), Options{Transport: tr},
		onePoolSnapshot("round_robin", false, schemeBackend("b", ln.Addr().String(), "https", true)))
	start := time.Now()
	r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
	checkErrorAnswer(t, r, http.StatusGatewayTimeout, errTimeout.Error())
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("answer took %v, want about the 200ms dial timeout", d)
	}
}

// upgradeHeader is a WebSocket handshake request's header.
func upgradeHeader() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

// wsEchoHandler greets a WebSocket client and echoes its messages with "echo: "; it answers
// other requests with okBodyReply.
func wsEchoHandler(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		_, _ = io.WriteString(w, okBodyReply)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background() // the connection, not the request, bounds this loop
	if err := c.Write(ctx, websocket.MessageText, []byte("welcome")); err != nil {
		return
	}
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, append([]byte("echo: "), msg...)); err != nil {
			return
		}
	}
}

func TestWebSocketByBackendProtocol(t *testing.T) {
	t.Run("h2c backend refuses the upgrade with 502 and sends nothing", func(t *testing.T) {
		be := newProtoBackend(t, kindH2C, wsEchoHandler)
		tp := startProxy(t, DefaultConfig(), Options{},
			onePoolSnapshot("round_robin", false, schemeBackend("b", be.addr(), "h2c", false)))
		r := send(t, newClient(t), http.MethodGet, tp.url+"/ws", "", upgradeHeader(), "")
		checkErrorAnswer(t, r, http.StatusBadGateway, "this backend does not support WebSocket")
		if hits, _, _, _, _ := be.seen(); hits != 0 {
			t.Fatalf("h2c backend got %d requests, want none", hits)
		}
		// Plain requests to the same backend still work: only the upgrade is refused.
		if r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK || r.body != okBodyReply {
			t.Fatalf("plain request to the h2c backend: %d %q", r.status, r.body)
		}
	})

	t.Run("mixed pool moves the upgrade from h2c to an HTTP/1.1 backend", func(t *testing.T) {
		h2 := newProtoBackend(t, kindH2C, wsEchoHandler)
		ws := newProtoBackend(t, kindPlain, wsEchoHandler)
		tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
			schemeBackend("h2", h2.addr(), "h2c", false), schemeBackend("ws", ws.addr(), "http", false)))
		addr := strings.TrimPrefix(tp.url, "http://")
		// Round robin sends one of the two first to the h2c backend; it must be retried.
		for i := range 2 {
			c, _ := wsDial(t, addr)
			wsExpect(t, c, "welcome")
			if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
				t.Fatalf("close socket %d: %v", i, err)
			}
		}
		if hits, _, _, _, _ := h2.seen(); hits != 0 {
			t.Fatalf("h2c backend got %d requests, want none", hits)
		}
		if n := counterValue(t, tp.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); n != 1 {
			t.Fatalf("retries = %v, want 1", n)
		}
	})

	t.Run("https backend offering HTTP/2 carries the socket over HTTP/1.1", func(t *testing.T) {
		be := newProtoBackend(t, kindTLSH2, wsEchoHandler)
		p := newProxy(t, DefaultConfig(), Options{},
			onePoolSnapshot("round_robin", false, schemeBackend("b", be.addr(), "https", true)))
		_, addr, _ := runServer(t, wsServerConfig(), p)
		c, _ := wsDial(t, addr)
		wsExpect(t, c, "welcome")
		wsEcho(t, c, "over tls")
		if _, proto, overTLS, _, _ := be.seen(); proto != 1 || !overTLS {
			t.Fatalf("backend saw the handshake as HTTP/%d, TLS %v; want HTTP/1, TLS", proto, overTLS)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close: %v", err)
		}
		testutil.Eventually(t, "in-flight requests to return to 0", func() bool { return p.InFlight() == 0 })
	})
}

// TestRetryAcrossProtocols: a retry moves a request to a backend of another scheme, and the
// request must then use that backend's URL scheme and transport.
func TestRetryAcrossProtocols(t *testing.T) {
	tests := []struct {
		name                 string
		deadScheme           string
		liveKind, liveScheme string
		wantProto            int
		wantTLS              bool
	}{
		{name: "https to http", deadScheme: "https", liveKind: kindPlain, liveScheme: "http", wantProto: 1},
		{name: "http to https", deadScheme: "http", liveKind: kindTLSH2, liveScheme: "https", wantProto: 2, wantTLS: true},
		{name: "https to h2c", deadScheme: "https", liveKind: kindH2C, liveScheme: "h2c", wantProto: 2},
		{name: "h2c to https", deadScheme: "h2c", liveKind: kindTLS, liveScheme: "https", wantProto: 1, wantTLS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := newProtoBackend(t, tt.liveKind, nil)
			// Round robin tries the first listed backend first; it refuses connections.
			tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
				schemeBackend("dead", deadAddr(t), tt.deadScheme, true), schemeBackend("live", live.addr(), tt.liveScheme, true)))
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			if r.status != http.StatusOK || r.body != okBodyReply {
				t.Fatalf("answer %d %q, want 200 %q", r.status, r.body, okBodyReply)
			}
			if _, proto, overTLS, _, _ := live.seen(); proto != tt.wantProto || overTLS != tt.wantTLS {
				t.Fatalf("live backend saw HTTP/%d, TLS %v; want HTTP/%d, TLS %v", proto, overTLS, tt.wantProto, tt.wantTLS)
			}
			if n := counterValue(t, tp.reg, "veloflux_retries_total", map[string]string{"pool": "web"}); n != 1 {
				t.Fatalf("retries = %v, want 1", n)
			}
		})
	}
}

// TestTrailersFromH2CBackend: gRPC-style response trailers from an h2c backend reach HTTP/2
// clients (the TLS listener, as gRPC clients use) and HTTP/1.1 clients (chunked trailers),
// although the backend's short answer comes with a Content-Length, which HTTP/2 allows next
// to trailers and HTTP/1.1 does not.
func TestTrailersFromH2CBackend(t *testing.T) {
	be := newProtoBackend(t, kindH2C, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Te") != "trailers" {
			http.Error(w, "missing Te: trailers", http.StatusBadRequest)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = io.WriteString(w, "payload")
		w.Header().Set("Grpc-Status", "0")
	})
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
		schemeBackend("b", be.addr(), "h2c", false)))
	h2 := httptest.NewUnstartedServer(p)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	h1 := httptest.NewServer(p)
	t.Cleanup(h1.Close)

	tests := []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"HTTP/2 client", h2.URL, h2.Client(), 2},
		{"HTTP/1.1 client", h1.URL, newClient(t), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, tt.url+"/pkg.Service/Method", strings.NewReader("request"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Te", "trailers")
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != http.StatusOK || string(body) != "payload" || resp.ProtoMajor != tt.proto {
				t.Fatalf("answer HTTP/%d %d %q, want HTTP/%d 200 payload", resp.ProtoMajor, resp.StatusCode, body, tt.proto)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
				t.Fatalf("trailer Grpc-Status = %q, want 0 (trailers %v)", got, resp.Trailer)
			}
		})
	}
}

// TestBackendChangeUnderSameID: how a backend is reached is fixed per upstream, so a change
// of scheme or of TLS verification under one ID takes effect with a new upstream, while
// settings that do not change the connection keep the upstream and its state.
func TestBackendChangeUnderSameID(t *testing.T) {
	upstreamOf := func(p *Proxy) *upstream {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.upstreams["web/b"]
	}
	apply := func(t *testing.T, p *Proxy, b discovery.Backend) {
		t.Helper()
		if err := p.Apply(onePoolSnapshot("round_robin", false, b)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}

	t.Run("http to h2c", func(t *testing.T) {
		be := newProtoBackend(t, kindH2C, nil) // also answers HTTP/1.1
		tp := startProxy(t, DefaultConfig(), Options{}, nil)
		c := newClient(t)
		for _, step := range []struct {
			scheme string
			proto  int
		}{{"http", 1}, {"h2c", 2}, {"", 1}} {
			before := upstreamOf(tp.Proxy)
			apply(t, tp.Proxy, schemeBackend("b", be.addr(), step.scheme, false))
			if before != nil && upstreamOf(tp.Proxy) == before {
				t.Fatalf("scheme %q kept the previous upstream", step.scheme)
			}
			if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK {
				t.Fatalf("scheme %q: answer %d %q", step.scheme, r.status, r.body)
			}
			if _, proto, _, _, _ := be.seen(); proto != step.proto {
				t.Fatalf("scheme %q: backend saw HTTP/%d, want HTTP/%d", step.scheme, proto, step.proto)
			}
		}
	})

	t.Run("https verification switched off", func(t *testing.T) {
		be := newProtoBackend(t, kindTLS, nil)
		tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
			schemeBackend("b", be.addr(), "https", false)))
		c := newClient(t)
		checkErrorAnswer(t, send(t, c, http.MethodGet, tp.url+"/", "", nil, ""), http.StatusBadGateway, errBackend.Error())
		before := upstreamOf(tp.Proxy)
		apply(t, tp.Proxy, schemeBackend("b", be.addr(), "https", true))
		if upstreamOf(tp.Proxy) == before {
			t.Fatalf("turning verification off kept the previous upstream")
		}
		if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK || r.body != okBodyReply {
			t.Fatalf("answer %d %q after turning verification off", r.status, r.body)
		}
	})

	t.Run("unchanged protocol keeps the upstream", func(t *testing.T) {
		be := newProtoBackend(t, kindPlain, nil)
		tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
			schemeBackend("b", be.addr(), "", false)))
		before := upstreamOf(tp.Proxy)
		for _, b := range []discovery.Backend{
			schemeBackend("b", be.addr(), "http", false), // empty and "http" are the same scheme
			schemeBackend("b", be.addr(), "http", true),  // verification means nothing without TLS
			{ID: "b", Address: be.addr(), Weight: 3, Scheme: "http", TLSSkipVerify: true},
		} {
			apply(t, tp.Proxy, b)
			if upstreamOf(tp.Proxy) != before {
				t.Fatalf("%+v replaced the upstream", b)
			}
		}
	})
}

func TestApplyRejectsUnknownScheme(t *testing.T) {
	be := newProtoBackend(t, kindPlain, nil)
	tp := startProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false,
		schemeBackend("a", be.addr(), "http", false)))
	c := newClient(t)
	version := tp.TableVersion()
	for _, bad := range []string{"ftp", "h2", "HTTP", "https "} {
		t.Run(bad, func(t *testing.T) {
			err := tp.Apply(onePoolSnapshot("round_robin", false, schemeBackend("a", be.addr(), bad, false)))
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("Apply = %v, want ErrInvalidSnapshot", err)
			}
			if want := `pool "web": backend "a": unknown scheme "` + bad + `"`; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
			if v := tp.TableVersion(); v != version {
				t.Fatalf("table version moved from %d to %d", version, v)
			}
			if r := send(t, c, http.MethodGet, tp.url+"/", "", nil, ""); r.status != http.StatusOK || r.body != okBodyReply {
				t.Fatalf("old table stopped serving: %d %q", r.status, r.body)
			}
		})
	}
}

// BenchmarkServeHTTPByProtocol measures one proxied GET per backend protocol over kept-alive
// backend connections, access log off, as BenchmarkServeHTTP does for http.
func BenchmarkServeHTTPByProtocol(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	tests := []struct {
		name, scheme string
		start        func() *httptest.Server
	}{
		{"http", "http", func() *httptest.Server { return httptest.NewServer(ok) }},
		{"https-h2", "https", func() *httptest.Server {
			s := httptest.NewUnstartedServer(ok)
			s.EnableHTTP2 = true
			s.StartTLS()
			return s
		}},
		{"h2c", "h2c", func() *httptest.Server {
			s := httptest.NewUnstartedServer(ok)
			s.Config.Protocols = h2cProtocols()
			s.Start()
			return s
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			srv := tt.start()
			b.Cleanup(srv.Close)
			cfg := DefaultConfig()
			cfg.AccessLog = false
			p := newProxy(b, cfg, Options{}, onePoolSnapshot("round_robin", false,
				schemeBackend("b", srv.Listener.Addr().String(), tt.scheme, true)))
			req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/v1/users?id=7", nil)
			w := &discardWriter{header: make(http.Header)}
			p.ServeHTTP(w, req) // open the backend connection outside the timed loop
			if w.code != http.StatusOK || w.n != 2 {
				b.Fatalf("warm-up answered %d with %d bytes", w.code, w.n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w.reset()
				p.ServeHTTP(w, req)
			}
			b.StopTimer()
			if w.code != http.StatusOK {
				b.Fatalf("last answer %d", w.code)
			}
		})
	}
}
