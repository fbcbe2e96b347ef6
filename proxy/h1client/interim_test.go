package h1client

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Interim responses reach Got1xxResponse in order, with their fields, before the final one;
// without the hook they reach the request's httptrace.ClientTrace.
func TestInterimResponses(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Link", "</b.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "ok")
	})
	want := []string{"103 </a.css>; rel=preload", "103 </b.js>; rel=preload"}

	t.Run("transport hook", func(t *testing.T) {
		tr := newTransport(t, Options{})
		var got []string
		tr.Got1xxResponse = func(req *http.Request, code int, h http.Header) error {
			got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
			return nil
		}
		if resp, body := get(t, tr, srv.URL); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("final %d %q", resp.StatusCode, body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("interim responses %q, want %q", got, want)
		}
	})
	t.Run("client trace", func(t *testing.T) {
		tr := newTransport(t, Options{})
		var got []string
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				got = append(got, strconv.Itoa(code)+" "+h.Get("Link"))
				return nil
			},
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		do(t, tr, req)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("interim responses %q, want %q", got, want)
		}
	})
}

// A request that expects 100-continue holds its body back until the backend asks for it; a
// backend that answers first never gets it, and its connection is not used again. A backend
// that stays silent gets the body after ExpectContinueTimeout.
func TestExpectContinue(t *testing.T) {
	srv, conns := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/refuse":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			b, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "got "+string(b))
		}
	})
	tr := newTransport(t, Options{ExpectContinueTimeout: time.Hour})
	var interim []int
	tr.Got1xxResponse = func(_ *http.Request, code int, _ http.Header) error {
		interim = append(interim, code)
		return nil
	}
	send := func(path string) (*http.Response, string, *countingReader) {
		t.Helper()
		body := &countingReader{r: strings.NewReader("hello")}
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, body)
		req.ContentLength = 5
		req.Header.Set("Expect", "100-continue")
		resp, b := do(t, tr, req)
		return resp, b, body
	}

	resp, body, sent := send("/take")
	if resp.StatusCode != 200 || body != "got hello" || sent.n != 5 {
		t.Fatalf("accepted: %d %q, %d body bytes read", resp.StatusCode, body, sent.n)
	}
	if !reflect.DeepEqual(interim, []int{http.StatusContinue}) {
		t.Fatalf("interim responses %v, want the backend's 100", interim)
	}
	resp, _, sent = send("/refuse")
	if resp.StatusCode != http.StatusUnauthorized || sent.n != 0 {
		t.Fatalf("refused: %d, %d body bytes read; want 401 and none", resp.StatusCode, sent.n)
	}
	if n := tr.IdleConns(); n != 0 {
		t.Fatalf("%d idle connections after a refused body, want 0", n)
	}
	before := conns.Load()
	if resp, body := get(t, tr, srv.URL+"/next"); resp.StatusCode != 200 || body != "got " {
		t.Fatalf("next: %d %q", resp.StatusCode, body)
	}
	if conns.Load() != before+1 {
		t.Fatal("the connection whose body was held back carried another request")
	}

	t.Run("silent backend", func(t *testing.T) {
		// A backend that ignores the expectation and waits for the body.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			b, _ := io.ReadAll(req.Body)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(b)+4)+"\r\n\r\ngot "+string(b))
		}()
		tr := newTransport(t, Options{ExpectContinueTimeout: time.Millisecond})
		req, _ := http.NewRequest(http.MethodPut, "http://"+ln.Addr().String(), strings.NewReader("hello"))
		req.Header.Set("Expect", "100-continue")
		if _, b := do(t, tr, req); b != "got hello" {
			t.Fatalf("body %q", b)
		}
		<-done
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// The trailer of a chunked request body is announced in the head and sent after the last
// chunk with the values it holds by then.
func TestRequestTrailers(t *testing.T) {
	srv, _ := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, string(b)+" "+r.Trailer.Get("X-Sum"))
	})
	tr := newTransport(t, Options{})
	trailer := http.Header{"X-Sum": nil}
	body := &fillTrailer{r: strings.NewReader("hello"), trailer: trailer}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	req.ContentLength = -1
	req.Trailer = trailer
	if _, b := do(t, tr, req); b != "hello 42" {
		t.Fatalf("the backend saw %q, want body and trailer %q", b, "hello 42")
	}
}

// fillTrailer sets the trailer's value at the body's end, as a server reading a chunked body does.
type fillTrailer struct {
	r       io.Reader
	trailer http.Header
}

func (f *fillTrailer) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.trailer.Set("X-Sum", "42")
	}
	return n, err
}
