package proxy

import (
	"strings"
	"testing"
)

// FuzzStickyCookie checks that no cookie value a client can send crashes verification, and
// that only values this signer made are accepted.
func FuzzStickyCookie(f *testing.F) {
	signer := newCookieSigner([]byte("0123456789abcdef0123456789abcdef"))
	_, good := signer.newSession()
	f.Add(good)
	f.Add(good[:len(good)-1] + "A")
	f.Add("")
	f.Add(strings.Repeat(".", cookieLen))
	f.Fuzz(func(t *testing.T, value string) {
		session, ok := signer.verify(value)
		if !ok {
			return
		}
		// Only the one value the signer itself makes for this session may pass: anything
		// else would be a forged MAC or a second spelling of the same session.
		var raw [sessionBytes]byte
		if _, err := cookieEncoding.Decode(raw[:], []byte(session)); err != nil {
			t.Fatalf("accepted session %q does not decode: %v", session, err)
		}
		if want := signer.sign(raw); value != want {
			t.Fatalf("accepted %q, but the signed value of its session is %q", value, want)
		}
	})
}

// FuzzRequestID checks that a request ID kept from a trusted peer can never carry bytes that
// would break a header or a log line.
func FuzzRequestID(f *testing.F) {
	f.Add("abc-123")
	f.Add("a\r\nInjected: 1")
	f.Add(strings.Repeat("x", 200))
	f.Fuzz(func(t *testing.T, id string) {
		got := validRequestID(id)
		if got != "" && got != id {
			t.Fatalf("validRequestID changed %q into %q", id, got)
		}
		if len(got) > 128 {
			t.Fatalf("kept a %d-byte id", len(got))
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c <= ' ' || c > '~' {
				t.Fatalf("kept id %q with byte %#x", got, c)
			}
		}
	})
}
