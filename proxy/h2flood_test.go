package proxy

import (
	"bytes"
	"crypto/tls"
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
	cert, roots := selfSigned(t)
	cfg := testServerConfig()
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	cfg.H2Guard = h2guard.Config{MinStreams: 50, PrematureWindow: time.Minute}
	s, _, _ := runServer(t, cfg, p)

	c, err := tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // a guard against a hang only
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "t"}, {Name: ":path", Value: "/"}} {
		_ = enc.WriteField(f)
	}
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
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
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
