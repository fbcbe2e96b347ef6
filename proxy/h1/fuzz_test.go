package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

// FuzzConn feeds arbitrary client streams, cut at an arbitrary size, through a guard. Whatever
// it hands on must be the input (less ignored empty lines before a request line), cut short,
// and then at most the synthetic request; and every request net/http reads from what the guard
// accepted must have a body framed the way the guard framed it, so the next request starts
// where the guard thinks it does.
func FuzzConn(f *testing.F) {
	f.Add([]byte(get), 3)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n"), 5)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n"+get), 1)
	f.Add([]byte("POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nab"+get), 7)
	f.Add([]byte(clientPreface+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 2)
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nxx"), 2)
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if chunk <= 0 || chunk > len(in)+1 {
			chunk = len(in) + 1
		}
		var rejected bool
		var h2c func(net.Conn) net.Conn
		if chunk%2 == 0 { // every other run lets a connection switch to HTTP/2 at its preface
			h2c = func(c net.Conn) net.Conn { return c }
		}
		g := NewGuard(Limits{MaxHeaderBytes: 1024, MaxHeaderCount: 10}, func(Rejection) { rejected = true }, h2c)
		c := g.Wrap(&scriptConn{chunks: split(in, chunk)})
		var out []byte
		p := make([]byte, 61)
		var err error
		for range 1 << 16 {
			var n int
			n, err = c.Read(p)
			out = append(out, p[:n]...)
			if err != nil {
				break
			}
		}
		if err == nil {
			t.Fatal("reader never ended")
		}
		if rejected {
			if !bytes.HasSuffix(out, g.synthetic) {
				t.Fatalf("rejected, but the output does not end with the synthetic request: %q", out)
			}
			out = out[:len(out)-len(g.synthetic)]
		} else if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformedBody) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(out) > len(in) {
			t.Fatalf("handed on %d bytes of %d", len(out), len(in))
		}
		checkNetHTTPAgrees(t, out)
	})
}

// checkNetHTTPAgrees reads requests from accepted bytes with net/http: none may have both
// framing headers, and none may start inside what the guard passed as a body.
func checkNetHTTPAgrees(t *testing.T, accepted []byte) {
	br := bufio.NewReader(bytes.NewReader(accepted))
	for range 1000 {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // net/http may be stricter on details (a Host's characters); that is fine
		}
		if len(req.TransferEncoding) > 0 && req.Header.Get("Content-Length") != "" {
			t.Fatalf("accepted a request with both framings: %v", req.Header)
		}
		if req.Method == http.MethodConnect {
			t.Fatal("accepted CONNECT")
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return // the guard handed on a body up to its fault
		}
		if req.Close || req.Header.Get("Upgrade") != "" {
			return
		}
	}
}
