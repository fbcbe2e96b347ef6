package proxy

import (
	"strings"
	"testing"
	"time"
)

// FuzzStickyCookie checks that no cookie value a client can send crashes verification, and
// that only values this signer made are accepted.
func FuzzStickyCookie(f *testing.F) {
	signer := newCookieSigner([]byte("0123456789abcdef0123456789abcdef"))
	good := signer.newSession(signer.tag("b0"), time.Unix(1_800_000_000, 0))
	f.Add(good)
	f.Add(good[:len(good)-1] + "A")
	f.Add("")
	f.Add(strings.Repeat(".", cookieLen))
	f.Fuzz(func(t *testing.T, value string) {
		c, ok := signer.verify(value)
		if !ok {
			return
		}
		// Only the one value the signer itself makes for this session, tag and issue time
		// may pass: anything else would be a forged MAC or a second spelling of one cookie.
		if want := signer.sign(c.raw, c.tag, c.issued); value != want {
			t.Fatalf("accepted %q, but the signed value of its session, tag and issue time is %q", value, want)
		}
		if c.session != value[:sessionLen] {
			t.Fatalf("session %q is not the first %d characters of %q", c.session, sessionLen, value)
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
