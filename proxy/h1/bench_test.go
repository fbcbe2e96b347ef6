package h1

import (
	"io"
	"net"
	"testing"
)

// loopConn serves the same bytes forever, a request stream without end.
type loopConn struct {
	net.Conn
	b   []byte
	off int
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

// BenchmarkGuardBrowserGET is the guard's cost for a typical browser request head (about
// 500 bytes, 10 fields), read the way net/http's 4 KiB buffer reads it.
func BenchmarkGuardBrowserGET(b *testing.B) {
	req := []byte("GET /assets/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Referer: https://www.example.com/\r\nCookie: vf_session=abcdefabcdefabcdefabcdef; theme=dark\r\n" +
		"Sec-Fetch-Dest: script\r\nSec-Fetch-Mode: no-cors\r\nConnection: keep-alive\r\n\r\n")
	c := NewGuard(DefaultLimits(), nil, nil).Wrap(&loopConn{b: req})
	p := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	b.ResetTimer()
	for range b.N {
		for got := 0; got < len(req); {
			n, err := c.Read(p[:min(len(p), len(req)-got)])
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			got += n
		}
	}
}
