package h1

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Every byte value, at every position of values up to three words long, is judged as
// net/http's check judges it.
func TestValidFieldValueAsHTTPGuts(t *testing.T) {
	for n := 1; n <= 24; n++ {
		for pos := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				v := string(b)
				if got, want := ValidFieldValue(v), httpguts.ValidHeaderFieldValue(v); got != want {
					t.Fatalf("%q: ValidFieldValue = %v, httpguts says %v", v, got, want)
				}
			}
		}
	}
	for _, v := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a\tb\tc\td\te\tf\tg\th\t", "\x80\xff\x7e\x20\x21\x1f"} {
		if got, want := ValidFieldValue(v), httpguts.ValidHeaderFieldValue(v); got != want {
			t.Errorf("%q: ValidFieldValue = %v, httpguts says %v", v, got, want)
		}
	}
}

func FuzzValidFieldValue(f *testing.F) {
	f.Add("text/html; charset=utf-8")
	f.Add("a\x7fbcdefghij\tk")
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := ValidFieldValue(v), httpguts.ValidHeaderFieldValue(v); got != want {
			t.Errorf("%q: ValidFieldValue = %v, httpguts says %v", v, got, want)
		}
	})
}

func BenchmarkValidFieldValue(b *testing.B) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	b.Run("h1", func(b *testing.B) {
		for b.Loop() {
			ValidFieldValue(tp)
		}
	})
	b.Run("httpguts", func(b *testing.B) {
		for b.Loop() {
			httpguts.ValidHeaderFieldValue(tp)
		}
	})
}

var canonicalCases = []string{
	"", "Content-Length", "content-length", "CONTENT-LENGTH", "Content-length", "X-Request-Id",
	"x-request-id", "Host", "-", "--a", "a-", "Foo_bar", "foo_bar", "1abc", "Foo Bar", "foo bar",
	"Ünicode", "\x80abc", "Te", "TE", "Keep-Alive", "keep-alive", "A-B-C", "a-b-c", "ETag",
}

func TestCanonicalKeyAsNetHTTP(t *testing.T) {
	for _, k := range canonicalCases {
		if got, want := CanonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("CanonicalKey(%q) = %q, net/http says %q", k, got, want)
		}
	}
}

func FuzzCanonicalKey(f *testing.F) {
	for _, k := range canonicalCases {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := CanonicalKey(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("CanonicalKey(%q) = %q, net/http says %q", k, got, want)
		}
	})
}

func TestTrimOWSAsStringsTrim(t *testing.T) {
	for _, v := range []string{"", " ", "\t", " \t a b \t ", "a", " a", "a ", "\ta\t", " \r a \n ", "\t\t\t"} {
		if got, want := TrimOWS(v), strings.Trim(v, " \t"); got != want {
			t.Errorf("TrimOWS(%q) = %q, want %q", v, got, want)
		}
	}
}
