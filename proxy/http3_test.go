package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/veloflux/veloflux/internal/testutil"
)

// h3Client is an HTTP/3-only client trusting the test certificate.
func h3Client(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: cfg}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// retryWatcher is a client's UDP socket that counts the QUIC Retry packets it receives.
type retryWatcher struct {
	net.PacketConn
	retries atomic.Int64
}

func (w *retryWatcher) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := w.PacketConn.ReadFrom(b)
	// A long header of QUIC version 1 with packet type 3 (RFC 9000 section 17.2.5).
	if n >= 5 && b[0]&0xc0 == 0xc0 && (b[0]>>4)&3 == 3 && binary.BigEndian.Uint32(b[1:5]) == 1 {
		w.retries.Add(1)
	}
	return n, addr, err
}

// h3WatchedClient is h3Client on a socket that counts the Retry packets the server sends.
func h3WatchedClient(t *testing.T, cfg *tls.Config) (*http.Client, *retryWatcher) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	w := &retryWatcher{PacketConn: pc}
	qt := &quic.Transport{Conn: w}
	tr := &http3.Transport{TLSClientConfig: cfg, Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		return qt.DialEarly(ctx, ua, tlsCfg, qc)
	}}
	t.Cleanup(func() {
		_ = tr.Close()
		_ = qt.Close()
		_ = pc.Close()
	})
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, w
}

func TestHTTP3(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cert, roots := serverCert(t)
	for _, retry := range []int{0, -1} { // the default (100 a second), and a Retry asked of every client
		cfg := testServerConfig()
		cfg.TLSAddr = "127.0.0.1:0"
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		cfg.HTTP3 = true
		cfg.HSTS = 600
		cfg.H3RetryAbove = retry
		s, _, _ := runServer(t, cfg, p)
		addr := s.Addrs()[1].String()

		// The TCP listener announces HTTP/3 on the same port.
		tcp := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
		r := send(t, tcp, http.MethodGet, "https://"+addr+"/", "", nil, "")
		if want := `h3=":` + addr[strings.LastIndexByte(addr, ':')+1:] + `"; ma=86400`; r.header.Get("Alt-Svc") != want {
			t.Fatalf("Alt-Svc %q, want %q", r.header.Get("Alt-Svc"), want)
		}

		c, watch := h3WatchedClient(t, &tls.Config{RootCAs: roots})
		resp, err := c.Post("https://"+addr+"/upload?x=1", "text/plain", strings.NewReader("hello over quic"))
		if err != nil {
			t.Fatalf("retry %d: HTTP/3 POST: %v", retry, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 3 || resp.StatusCode != 200 || string(body) != "app" {
			t.Fatalf("retry %d: %s %d %q, want HTTP/3 200 app", retry, resp.Proto, resp.StatusCode, body)
		}
		if resp.Header.Get("Strict-Transport-Security") != "max-age=600" || resp.Header.Get("Alt-Svc") != "" {
			t.Fatalf("HTTP/3 response headers: HSTS %q, Alt-Svc %q", resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("Alt-Svc"))
		}
		seen := be.last(t)
		if seen.Method != http.MethodPost || seen.URI != "/upload?x=1" || seen.Body != "hello over quic" {
			t.Fatalf("backend saw %s %s %q", seen.Method, seen.URI, seen.Body)
		}
		if seen.Header.Get("X-Forwarded-Proto") != "https" || seen.Header.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Fatalf("backend saw X-Forwarded-Proto %q, X-Forwarded-For %q", seen.Header.Get("X-Forwarded-Proto"), seen.Header.Get("X-Forwarded-For"))
		}
		// One handshake is far below 100 a second: no Retry then. Asked of every client, at least
		// one (one per Initial the client sent, which a loaded machine may send again).
		if got := watch.retries.Load(); (got > 0) != (retry < 0) {
			t.Fatalf("retry %d: the client received %d Retry packets", retry, got)
		}
	}
}

// handshakeRate asks for address validation once the handshakes of one second pass the limit,
// and counts afresh the next second.
func TestHandshakeRate(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	r := &handshakeRate{limit: 100}
	for i := range 100 {
		if r.busy(start.Add(time.Duration(i) * time.Millisecond)) {
			t.Fatalf("handshake %d of the first second asked for a Retry, limit 100", i+1)
		}
	}
	if !r.busy(start.Add(500 * time.Millisecond)) {
		t.Fatal("handshake 101 of the first second did not ask for a Retry")
	}
	if r.busy(start.Add(time.Second)) {
		t.Fatal("the first handshake of the next second asked for a Retry")
	}
	always := &handshakeRate{limit: -1}
	if !always.busy(start) {
		t.Fatal("a negative limit did not ask every client for a Retry")
	}
}

// 0-RTT is off: a client that resumes a session from an earlier connection and offers early
// data gets a full handshake, so no request can be replayed from a captured flight.
func TestHTTP3No0RTT(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.HTTP3 = true
	s, _, _ := runServer(t, cfg, p)
	addr := s.Addrs()[1].String()
	tlsCfg := &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(4), NextProtos: []string{http3.NextProtoH3}}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
		conn, err := quic.DialAddrEarly(ctx, addr, tlsCfg, &quic.Config{})
		cancel()
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		// A request completes the handshake and lets the session ticket arrive.
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
		resp, err := (&http3.Transport{}).NewClientConn(conn).RoundTrip(req)
		if err != nil {
			t.Fatalf("connection %d: GET: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		st := conn.ConnectionState()
		_ = conn.CloseWithError(0, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: status %d", i+1, resp.StatusCode)
		}
		if i == 1 && !st.TLS.DidResume {
			t.Fatal("the second connection did not resume the first one's session; the test proves nothing")
		}
		if st.Used0RTT {
			t.Fatalf("connection %d used 0-RTT", i+1)
		}
	}
}

// A drain sends HTTP/3 GOAWAY, so the client opens no new request on the connection, and lets
// a request in flight finish, like the TCP side.
func TestHTTP3Drain(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	started := make(chan struct{}, 1)
	be := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	t.Cleanup(free) // after a failure too, before the backend's Close waits for the handler
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("slow", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.HTTP3 = true
	s, _, stop := runServer(t, cfg, p)
	addr := s.Addrs()[1].String()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Timeout())
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{RootCAs: roots, NextProtos: []string{http3.NextProtoH3}}, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.CloseWithError(0, "") }()
	c := (&http3.Transport{}).NewClientConn(conn)
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		return c.RoundTrip(req)
	}
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := get("/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{string(b), err}
	}()
	testutil.Receive(t, started, "the request to reach the backend")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	testutil.Eventually(t, "the proxy to drain", p.Draining)
	var last error
	testutil.EventuallyWithNote(t, "a GOAWAY that refuses new requests on the connection", func() (bool, string) {
		resp, err := get("/")
		if err == nil {
			resp.Body.Close()
			return false, resp.Status
		}
		last = err
		return strings.Contains(err.Error(), "graceful shutdown"), err.Error()
	})
	t.Logf("a new request after the drain began: %v", last)
	free()
	if r := testutil.Receive(t, done, "the request in flight to finish"); r.err != nil || r.body != "finished" {
		t.Fatalf("request in flight during the drain: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// With H2C, the plain listener serves HTTP/2 with prior knowledge beside HTTP/1, which stays
// behind its guard.
func TestH2CPlainListener(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg := testServerConfig()
	cfg.H2C = true
	_, addr, _ := runServer(t, cfg, p)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/h2c")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "app" {
		t.Fatalf("h2c: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if r := send(t, newClient(t), http.MethodGet, "http://"+addr+"/h1", "", nil, ""); r.status != 200 {
		t.Fatalf("HTTP/1 beside h2c: %d", r.status)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(raw, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("HTTP/1 smuggling attempt with h2c on: %v %v, want 400", r, err)
	}
	if be.hits() != 2 {
		t.Fatalf("backend hits %d, want 2", be.hits())
	}
}

// With HTTP/3 on a kernel-chosen port, a TCP port whose UDP side another socket holds is given
// up: the TLS listener binds TCP and UDP again on another port and serves HTTP/3 there.
func TestHTTP3PortTakenOnUDP(t *testing.T) {
	// A port free on TCP whose UDP side this test holds; the kernel picks the UDP one, and
	// another socket may hold its TCP side, so a few tries.
	var held net.PacketConn
	var taken net.Listener
	for try := 0; try < 20 && taken == nil; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if ln, err := net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			held, taken = pc, ln
			break
		}
		_ = pc.Close()
	}
	if taken == nil {
		t.Fatal("no port free on TCP for a UDP port this test holds, in 20 tries")
	}
	t.Cleanup(func() { _ = held.Close() })
	takenPort := taken.Addr().(*net.TCPAddr).Port

	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.Addr = ""
	cfg.HTTP3 = true
	s, err := NewServer(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var binds atomic.Int64
	s.listenTCP = func(network, address string) (net.Listener, error) {
		if binds.Add(1) == 1 {
			return taken, nil // as if the kernel had chosen this port
		}
		return net.Listen(network, address)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := testutil.Receive(t, done, "Serve to return"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	addr := s.Addrs()[0].String()
	if got := s.Addrs()[0].(*net.TCPAddr).Port; got == takenPort || binds.Load() < 2 {
		t.Fatalf("TLS listener on port %d after %d binds, want another port than %d, whose UDP side is held", got, binds.Load(), takenPort)
	}
	if c, err := net.Dial("tcp", taken.Addr().String()); err == nil {
		_ = c.Close()
		t.Fatalf("the TCP listener on the given-up port %d is still open", takenPort)
	}
	resp, err := h3Client(t, &tls.Config{RootCAs: roots}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("HTTP/3 GET on %s: %v", addr, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || string(body) != "app" {
		t.Fatalf("%s %d %q, want HTTP/3 200 app", resp.Proto, resp.StatusCode, body)
	}
}
