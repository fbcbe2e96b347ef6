package h1client

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readBoth reads in with readResponse and with http.ReadResponse, each from its own buffer of
// the same size as a connection's, and fails the test where their results differ: fields,
// framing, body, and what stays in the buffer after the body. It reports whether the fast
// reading took the head.
func readBoth(t testing.TB, method, in string) (fast bool) {
	t.Helper()
	req := &http.Request{Method: method}
	buf := []byte(in)
	if len(buf) > bufSize {
		buf = buf[:bufSize]
	}
	sr, _ := parseSimpleHead(buf, req)
	if sr == nil {
		return false
	}
	sr.put()
	type result struct {
		Status                   string
		StatusCode, Major, Minor int
		Proto                    string
		Header                   http.Header
		ContentLength            int64
		Close, Uncompressed      bool
		TransferEncoding         []string
		Trailer                  http.Header
		Body                     string
		BodyErr                  bool
		Rest                     string
	}
	read := func(f func(*bufio.Reader, *http.Request) (*http.Response, error)) (result, error) {
		br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
		resp, err := f(br, req)
		if err != nil {
			return result{}, err
		}
		b, berr := io.ReadAll(resp.Body)
		rest, _ := io.ReadAll(br)
		return result{
			resp.Status, resp.StatusCode, resp.ProtoMajor, resp.ProtoMinor, resp.Proto, resp.Header,
			resp.ContentLength, resp.Close, resp.Uncompressed, resp.TransferEncoding, resp.Trailer,
			string(b), berr != nil, string(rest),
		}, nil
	}
	got, err := read(func(br *bufio.Reader, req *http.Request) (*http.Response, error) {
		resp, _, err := readResponse(br, req)
		return resp, err
	})
	if err != nil {
		t.Fatalf("readResponse took the head of %q, then failed: %v", in, err)
	}
	want, err := read(http.ReadResponse)
	if err != nil {
		t.Fatalf("readResponse took the head of %q, which http.ReadResponse refuses: %v", in, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nreadResponse     %+v\nhttp.ReadResponse %+v", in, got, want)
	}
	return true
}

// TestReadResponseParity: the heads the fast reading takes, it reads as http.ReadResponse
// does; the others it leaves whole to http.ReadResponse.
func TestReadResponseParity(t *testing.T) {
	tests := []struct {
		name, method, in string
		fast             bool
	}{
		{"usual answer", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n", true},
		{"lower-case and repeated fields", "GET", "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nx-a: 1\r\nX-A:  2 \t\r\nset-cookie: a=b\r\n\r\nno", true},
		{"no reason phrase", "POST", "HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n", true},
		{"empty body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
		{"obs-text in a value", "GET", "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 1\r\n\r\nx", true},
		{"body shorter than its length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\n\r\nuntil the end", false},
		{"keep-alive, as nginx sends it", "GET", "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 13:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", true},
		{"connection close among other tokens", "GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", false},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"answer to HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", false},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false},
		{"not modified", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", false},
		{"interim", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"two lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"signed length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
		{"folded line", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false},
		{"bare CR in a value", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\r2\r\nContent-Length: 2\r\n\r\nok", false},
		{"space before the colon", "GET", "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok", false},
		{"pragma", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok", false},
		{"trailer announced", "GET", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 2\r\n\r\nok", false},
		{"head not whole yet", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
		{"bare LF after a field", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", false},
		{"as many fields as it reads", "GET", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: 1\r\n", maxSimpleFields-1) + "Content-Length: 2\r\n\r\nok", true},
		{"more fields", "GET", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: 1\r\n", maxSimpleFields) + "Content-Length: 2\r\n\r\nok", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readBoth(t, tt.method, tt.in); got != tt.fast {
				t.Fatalf("fast reading took the head: %v, want %v", got, tt.fast)
			}
		})
	}
}

func FuzzReadResponse(f *testing.F) {
	f.Add("GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	f.Add("GET", "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nx-a: 1\r\nX-A:  2 \t\r\n\r\nno")
	f.Add("POST", "HTTP/1.1 201\r\nContent-Length: 0\r\n\r\n")
	f.Add("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	f.Fuzz(func(t *testing.T, method, in string) {
		readBoth(t, method, in)
	})
}
