//go:build integration

package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/veloflux/veloflux/internal/testutil"
)

// TestHTTP2RapidResetFlood opens streams and resets them at once, as fast as one connection
// allows, up to 100,000 pairs: the node answers with GOAWAY ENHANCE_YOUR_CALM, closes the
// connection, counts it, and the backend receives at most a few hundred of the requests.
func TestHTTP2RapidResetFlood(t *testing.T) {
	var hits atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(be.Close)
	certFile, keyFile := writeCert(t, t.TempDir())
	n := startNode(t, tlsNode(strings.TrimPrefix(be.URL, "http://"), certFile, keyFile).YAML(t))
	tlsAddr := n.tlsListener()

	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute)) // a guard against a hang only
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
	hdr := block.Bytes()

	// The reader looks for the GOAWAY while the writer floods.
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
	const pairs = 100_000
	sent := 0
	for i := range pairs {
		id := uint32(2*i + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hdr, EndStream: true, EndHeaders: true}); err != nil {
			break
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	g, ok := <-goaway
	if !ok || g == nil {
		t.Fatalf("no GOAWAY after %d HEADERS+RST_STREAM pairs", sent)
	}
	if g.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", g.ErrCode)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		// Frames still in flight are fine; the connection must end soon after.
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for err == nil {
			_, err = c.Read(make([]byte, 4096))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("connection still open 30 s after the GOAWAY")
		}
	}
	// Backend requests already started finish or fail on their own; wait until the count rests.
	var last int64 = -1
	testutil.Eventually(t, "backend requests to settle", func() bool {
		h := hits.Load()
		settled := h == last
		last = h
		return settled
	})
	t.Logf("%d pairs sent before the connection ended; backend received %d requests", sent, hits.Load())
	if h := hits.Load(); h > 1000 {
		t.Fatalf("backend received %d requests from the flood, want at most 1,000", h)
	}
	_, m, _ := get(t, "http://"+n.metrics+"/metrics")
	// One or both defences may have fired: the guard's rule, or the HTTP/2 server's own queue.
	if !strings.Contains(m, `veloflux_client_rejections_total{protocol="http2",reason="rapid reset"}`) {
		t.Fatalf("the closed connection is not counted:\n%s", grep(m, "veloflux_client_rejections_total"))
	}

	// A well-behaved HTTP/2 client is still served.
	var h2only http.Protocols
	h2only.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Protocols: &h2only}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + tlsAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("a normal HTTP/2 request after the flood: HTTP/%d %d", resp.ProtoMajor, resp.StatusCode)
	}
}
