package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/veloflux/veloflux/proxy/h2guard"
)

// TestHTTP2RapidResetGuard floods the TLS listener with HEADERS+RST_STREAM pairs under a guard
// judging after 50 streams, well before the HTTP/2 server's own defence (400 queued handlers)
// could: the guard's GOAWAY ENHANCE_YOUR_CALM ends the connection and is counted.
func TestHTTP2RapidResetGuard(t *testing.T) {
	be := newBackend(t, "app", nil)
	reg := prometheus.NewRegistry()
	p := newProxy(t, DefaultConfig(), Options{Registerer: reg}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	cfg.H2Guard = h2guard.Config{MinStreams: 50, PrematureWindow: time.Minute}
	s, _, _ := runServer(t, cfg, p)

	_, fr := h2Start(t, s.Addrs()[1].String(), roots)
	block := h2GetBlock()
	goaway := make(chan *http2.GoAwayFrame, 1)
	go func() {
		defer close(goaway)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- g
				return
			}
		}
	}()
	for i := range 2000 {
		id := uint32(2*i + 1)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
	}
	g := <-goaway
	if g == nil || g.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", g)
	}
	if g.LastStreamID > 2*60 {
		t.Errorf("GOAWAY last stream %d: the guard judged later than 50 streams", g.LastStreamID)
	}
	if n := counterValue(t, reg, "veloflux_client_rejections_total", map[string]string{"protocol": "http2", "reason": "rapid reset"}); n != 1 {
		t.Errorf("rapid-reset closes counted: %v, want 1", n)
	}
	if h := be.hits(); h > 100 {
		t.Errorf("backend received %d requests from a flood stopped after 50 streams", h)
	}
}

// h2Dial opens a TLS connection to addr that negotiated h2.
func h2Dial(t *testing.T, addr string, roots *x509.CertPool) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard against a hang only
	return c
}

// A client that negotiates h2 and then speaks HTTP/1.1 is cut off: such a connection is not
// behind the HTTP/1 guard, so HTTP/1 must never be served on it.
func TestH2ConnectionWithoutPrefaceIsClosed(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	s, _, _ := runServer(t, cfg, p)
	c := h2Dial(t, s.Addrs()[1].String(), roots)
	smuggle := "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: t\r\n\r\n"
	if _, err := io.WriteString(c, smuggle); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if len(got) > 0 {
		t.Fatalf("the proxy answered %q (read error %v), want the connection closed", got, err)
	}
	if n := be.hits(); n != 0 {
		t.Fatalf("backend saw %d requests", n)
	}
}

// An HTTP/2 request with a connection-specific field is malformed (RFC 9113 section 8.2.2):
// it is refused and never forwarded, where an HTTP/1 backend would act on the field.
func TestH2ConnectionSpecificFieldsRefused(t *testing.T) {
	be := newBackend(t, "app", nil)
	p := newProxy(t, DefaultConfig(), Options{}, onePoolSnapshot("round_robin", false, member("app", be.addr(), 1)))
	cfg, roots := tlsServerConfig(t)
	s, _, _ := runServer(t, cfg, p)
	for i, extra := range []hpack.HeaderField{
		{Name: "connection", Value: "keep-alive"},
		{Name: "transfer-encoding", Value: "chunked"},
		{Name: "te", Value: "gzip"},
		{Name: "upgrade", Value: "websocket"},
		{Name: "keep-alive", Value: "timeout=5"},
		{Name: "proxy-connection", Value: "close"},
		{Name: "te", Value: "trailers"}, // the one TE allowed: forwarded
	} {
		_, fr := h2Start(t, s.Addrs()[1].String(), roots)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2GetBlock(extra), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		status := ""
		dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
			if f.Name == ":status" {
				status = f.Value
			}
		})
		for status == "" {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: %v", extra.Name, err)
			}
			if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1 {
				if _, err := dec.Write(h.HeaderBlockFragment()); err != nil {
					t.Fatal(err)
				}
			}
		}
		want, wantHits := "400", 0
		if extra.Value == "trailers" {
			want, wantHits = "200", 1
		}
		if status != want || be.hits() != wantHits {
			t.Fatalf("%d %s: %s: status %s, backend hits %d; want %s and %d", i, extra.Name, extra.Value, status, be.hits(), want, wantHits)
		}
	}
}

// The HTTP/2 limits are what the server advertises in its first SETTINGS frame, and the
// connection's window what its first WINDOW_UPDATE on stream 0 opens beyond the protocol's
// initial 65,535 bytes.
func TestH2SettingsAdvertised(t *testing.T) {
	p := newProxy(t, DefaultConfig(), Options{}, nil)
	cfg, roots := tlsServerConfig(t)
	cfg.H2MaxConcurrentStreams = 42
	cfg.H2MaxFrameSize = 32768
	cfg.H2StreamWindow = 262144
	cfg.H2ConnWindow = 2 << 20
	s, _, _ := runServer(t, cfg, p)
	_, fr := h2Start(t, s.Addrs()[1].String(), roots)
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	for id, want := range map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 42,
		http2.SettingMaxFrameSize:         32768,
		http2.SettingInitialWindowSize:    262144,
	} {
		if v, ok := sf.Value(id); !ok || v != want {
			t.Errorf("%v = %d (sent %v), want %d", id, v, ok, want)
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames for the connection's WINDOW_UPDATE: %v", err)
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == 0 {
			if want := uint32(2<<20 - 65535); wu.Increment != want {
				t.Errorf("connection WINDOW_UPDATE +%d, want +%d (h2_conn_window 2 MiB)", wu.Increment, want)
			}
			return
		}
	}
}

// h2Start opens an HTTP/2 connection to addr by hand: TLS with ALPN h2, the client preface and
// an empty SETTINGS frame; the Framer reads and writes raw frames.
func h2Start(t *testing.T, addr string, roots *x509.CertPool) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c := h2Dial(t, addr, roots)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// h2GetBlock is the HPACK block of GET https://t/ with extra fields after the pseudo-fields.
func h2GetBlock(extra ...hpack.HeaderField) []byte {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "t"}, {Name: ":path", Value: "/"}}, extra...) {
		_ = enc.WriteField(f)
	}
	return block.Bytes()
}
