package testutil

import (
	"net/http"
	"net/http/httptest"
)

// Transport returns an http.RoundTripper that serves each request by calling h on the
// caller's goroutine, without sockets. It lets an HTTP client (a Consul API client, say) run
// inside a testing/synctest bubble, which real network I/O cannot enter: h's blocking, and
// the client's timers, then run on the bubble's clock. h sees the request as a server would
// (a non-nil Body, RequestURI and RemoteAddr set). A request whose context ends while h runs
// fails with the context's error, as on a real transport. The response is buffered whole, so
// h cannot stream.
func Transport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (tr handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close() // a RoundTripper closes the body, as the http.Client expects
	}
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "192.0.2.1:49152" // TEST-NET-1: the address of no real client
	rec := httptest.NewRecorder()
	tr.h.ServeHTTP(rec, r)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
