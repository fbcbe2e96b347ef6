package proxy

import (
	"maps"
	"mime"
	"net/http"
	"slices"
	"testing"
)

// A backend's hop-by-hop fields, and those its Connection names, never reach the client,
// whether the answer has few fields (each looked at) or many (each name deleted).
func TestRemoveHopByHop(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   http.Header
		want []string
	}{
		{"usual answer", http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}, "Content-Length": {"3"}, "Server": {"nginx"}}, []string{"Content-Length", "Server"}},
		{"named fields", http.Header{"Connection": {"close, X-Private ,x-other"}, "X-Private": {"1"}, "X-Other": {"2"}, "Close": {"3"}, "Date": {"now"}}, []string{"Date"}},
		{"every hop-by-hop field and more", func() http.Header {
			h := http.Header{}
			for _, k := range hopByHop {
				h[k] = []string{"x"}
			}
			for _, k := range []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"} {
				h[k] = []string{"y"}
			}
			return h
		}(), []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"}},
		{"hop-by-hop fields alone", http.Header{"Te": {"trailers"}, "Upgrade": {"h2c"}, "Proxy-Connection": {"keep-alive"}, "Trailer": {"X"}, "Transfer-Encoding": {"chunked"}, "Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"x"}}, []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			removeHopByHop(tt.in)
			if got := slices.Sorted(maps.Keys(tt.in)); !slices.Equal(got, tt.want) {
				t.Errorf("fields left %v, want %v", got, tt.want)
			}
		})
	}
}

// The cheap test before parsing a Content-Type never turns away one that parses as an event
// stream.
func TestMayBeEventStream(t *testing.T) {
	for _, ct := range []string{
		"text/event-stream", "TEXT/Event-Stream", " text/event-stream; charset=utf-8", "\ttext/event-stream ;x=y",
		"text/html", "text/plain; charset=utf-8", "application/json", "", "text/event", "text/event-streams",
		"text/event-stream\x00", "x text/event-stream", "\u00a0\v\r\ntext/event-stream",
	} {
		mt, _, _ := mime.ParseMediaType(ct)
		if parsed, cheap := mt == "text/event-stream", mayBeEventStream(ct); parsed && !cheap {
			t.Errorf("%q parses as text/event-stream, but mayBeEventStream says no", ct)
		}
	}
}

func FuzzMayBeEventStream(f *testing.F) {
	f.Add("text/event-stream; charset=utf-8")
	f.Add(" Text/Event-Stream")
	f.Fuzz(func(t *testing.T, ct string) {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt == "text/event-stream" && !mayBeEventStream(ct) {
			t.Errorf("%q parses as text/event-stream, but mayBeEventStream says no", ct)
		}
	})
}
