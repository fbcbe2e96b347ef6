package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/proxy/balance"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func stickyConfig() Config {
	cfg := DefaultConfig()
	cfg.Sticky.Secret = testSecret
	// Requests come from 127.0.0.1; believing its X-Forwarded-For lets a test play many
	// clients, so an affinity policy alone cannot look sticky.
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	return cfg
}

// stickyPool starts n default backends named b0..b(n-1) in one sticky pool.
func stickyPool(t *testing.T, algorithm string, n int) ([]*testBackend, *discovery.Snapshot) {
	t.Helper()
	var bs []*testBackend
	var members []discovery.Backend
	for i := 0; i < n; i++ {
		b := newBackend(t, fmt.Sprintf("b%d", i), nil)
		bs = append(bs, b)
		members = append(members, member(b.name, b.addr(), 1))
	}
	return bs, onePoolSnapshot(algorithm, true, members...)
}

// stickyCookie returns the sticky cookie a response sets, or nil.
func stickyCookie(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func withCookie(value, clientIP string) http.Header {
	h := http.Header{"X-Forwarded-For": {clientIP}}
	if value != "" {
		h.Set("Cookie", "vf_session="+value)
	}
	return h
}

func TestStickyCookieAttributes(t *testing.T) {
	custom := stickyConfig()
	custom.Sticky = StickyConfig{CookieName: "route", TTL: 10 * time.Minute, Secure: true, HTTPOnly: false, SameSite: SameSiteStrict, Secret: testSecret}
	sameSiteNone := stickyConfig()
	sameSiteNone.Sticky.SameSite, sameSiteNone.Sticky.Secure = SameSiteNone, true
	tests := []struct {
		name     string
		cfg      Config
		wantName string
		want     []string // attributes the Set-Cookie line must carry
		wantNot  []string
	}{
		{"defaults", stickyConfig(), "vf_session", []string{"Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"}, []string{"Secure"}},
		{"configured", custom, "route", []string{"Path=/", "Max-Age=600", "Secure", "SameSite=Strict"}, []string{"HttpOnly"}},
		{"same_site none", sameSiteNone, "vf_session", []string{"Secure", "SameSite=None"}, []string{"SameSite=Lax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, snap := stickyPool(t, "round_robin", 2)
			tp := startProxy(t, tt.cfg, Options{}, snap)
			r := send(t, newClient(t), http.MethodGet, tp.url+"/", "", nil, "")
			lines := r.header.Values("Set-Cookie")
			if len(lines) != 1 {
				t.Fatalf("Set-Cookie = %q, want one cookie", lines)
			}
			c := stickyCookie(r, tt.wantName)
			if c == nil || len(c.Value) != cookieLen {
				t.Fatalf("Set-Cookie %q: no %s cookie of %d characters", lines[0], tt.wantName, cookieLen)
			}
			if _, ok := tp.settings.Load().signer.verify(c.Value); !ok {
				t.Fatalf("issued cookie %q does not verify", c.Value)
			}
			for _, a := range tt.want {
				if !strings.Contains(lines[0], "; "+a) {
					t.Fatalf("Set-Cookie %q lacks %s", lines[0], a)
				}
			}
			for _, a := range tt.wantNot {
				if strings.Contains(lines[0], a) {
					t.Fatalf("Set-Cookie %q has %s", lines[0], a)
				}
			}
		})
	}
}

// TestStickyAllAlgorithms: with a valid cookie every request goes to the session's backend
// whatever the policy would pick. Each request comes from another client address, and the
// same requests without the cookie must spread, so no policy can pass this by itself.
func TestStickyAllAlgorithms(t *testing.T) {
	for _, algo := range balance.Algorithms() {
		t.Run(algo, func(t *testing.T) {
			_, snap := stickyPool(t, algo, 3)
			tp := startProxy(t, stickyConfig(), Options{}, snap)
			c := newClient(t)
			first := send(t, c, http.MethodGet, tp.url+"/", "", withCookie("", "198.51.100.1"), "")
			cookie := stickyCookie(first, "vf_session")
			if cookie == nil {
				t.Fatalf("first response set no sticky cookie")
			}
			pinned := first.header.Get("X-Backend")
			unpinned := map[string]bool{}
			for i := 2; i < 32; i++ {
				ip := fmt.Sprintf("198.51.100.%d", i)
				r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(cookie.Value, ip), "")
				if got := r.header.Get("X-Backend"); got != pinned {
					t.Fatalf("request %d with the cookie went to %s, want pinned %s", i, got, pinned)
				}
				if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
					t.Fatalf("a fresh pin re-sent its cookie: %q", sc)
				}
				unpinned[send(t, c, http.MethodGet, tp.url+"/", "", withCookie("", ip), "").header.Get("X-Backend")] = true
			}
			if len(unpinned) < 2 {
				t.Fatalf("without the cookie the same requests all went to %v: the test cannot tell stickiness from the policy", unpinned)
			}
		})
	}
}

// modifyAt replaces the base64url character at i by another whose 6-bit value differs by
// xor, so the change is certain to be a change.
func modifyAt(v string, i int, xor byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	idx := strings.IndexByte(alphabet, v[i])
	return v[:i] + string(alphabet[byte(idx)^xor]) + v[i+1:]
}

func TestStickyTamperedCookie(t *testing.T) {
	other := newCookieSigner([]byte("another secret, also 32 bytes ok"))
	forged := other.newSession(other.tag("b0"), time.Now())
	tests := []struct {
		name   string
		tamper func(string) string
	}{
		{"flipped tag character", func(v string) string { return modifyAt(v, sessionLen+1+2, 0x20) }},
		{"flipped issue time character", func(v string) string { return modifyAt(v, sessionLen+1+12, 0x01) }},
		{"flipped MAC character", func(v string) string { return modifyAt(v, sessionLen+1+25, 0x20) }},
		{"flipped session character", func(v string) string { return modifyAt(v, 3, 0x20) }},
		// The last session character carries 2 data bits and 4 padding bits; a lenient
		// decoder would accept this as a second spelling, and so a second session.
		{"padding bits of the last session character", func(v string) string { return modifyAt(v, sessionLen-1, 0x01) }},
		{"padding bits of the last pin character", func(v string) string { return modifyAt(v, cookieLen-1, 0x01) }},
		{"truncated", func(v string) string { return v[:len(v)-1] }},
		{"separator replaced", func(v string) string { return v[:sessionLen] + "_" + v[sessionLen+1:] }},
		{"signed with another secret", func(string) string { return forged }},
		{"not a cookie at all", func(string) string { return "garbage" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, snap := stickyPool(t, "round_robin", 2)
			tp := startProxy(t, stickyConfig(), Options{}, snap)
			c := newClient(t)
			orig := stickyCookie(send(t, c, http.MethodGet, tp.url+"/", "", nil, ""), "vf_session")
			if orig == nil {
				t.Fatalf("no cookie issued")
			}
			bad := tt.tamper(orig.Value)
			r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(bad, "198.51.100.1"), "")
			if r.status != http.StatusOK {
				t.Fatalf("tampered cookie got status %d, want 200 as a new session", r.status)
			}
			fresh := stickyCookie(r, "vf_session")
			if fresh == nil {
				t.Fatalf("tampered cookie %q was accepted: no new session cookie issued", bad)
			}
			if fresh.Value == bad || fresh.Value == orig.Value {
				t.Fatalf("response re-issued cookie %q, want a new session", fresh.Value)
			}
			if _, ok := tp.settings.Load().signer.verify(fresh.Value); !ok {
				t.Fatalf("new cookie %q does not verify", fresh.Value)
			}
		})
	}
}

// rendezvousChoice is where the proxy must re-pin session among the backends ids (weight 1).
func rendezvousChoice(session string, ids ...string) string {
	cands := make([]*balance.Backend, len(ids))
	for i, id := range ids {
		cands[i] = new(balance.Backend)
		cands[i].Init(id, 1)
	}
	return ids[balance.Rendezvous(cands, balance.HashString(session))]
}

// TestStickyFailover: a session whose backend goes down moves to the rendezvous choice over
// the others, stores that one move, gets its cookie signed again for the new backend, and stays
// there when the old backend comes back, also for requests that still carry the old cookie.
// While nothing fails the store holds nothing.
func TestStickyFailover(t *testing.T) {
	_, snap := stickyPool(t, "round_robin", 3)
	health := &downSet{}
	moves := NewLocalSessions(0)
	tp := startProxy(t, stickyConfig(), Options{Health: health, Sessions: moves}, snap)
	c := newClient(t)
	all := []string{"b0", "b1", "b2"}
	signer := tp.settings.Load().signer

	first := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
	cookie := stickyCookie(first, "vf_session")
	if cookie == nil {
		t.Fatalf("no cookie issued")
	}
	pinned := first.header.Get("X-Backend")
	for i := range 5 {
		if got := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(cookie.Value, "198.51.100.1"), "").header.Get("X-Backend"); got != pinned {
			t.Fatalf("request %d went to %s, want %s", i, got, pinned)
		}
	}
	if n := moves.Len(); n != 0 {
		t.Fatalf("store holds %d entries while nothing failed, want 0", n)
	}
	var rest []string
	for _, id := range all {
		if id != pinned {
			rest = append(rest, id)
		}
	}
	want := rendezvousChoice(cookie.Value[:sessionLen], rest...)

	health.setDown(pinned)
	var moved *http.Cookie
	for i := range 5 {
		r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(cookie.Value, "198.51.100.1"), "")
		if got := r.header.Get("X-Backend"); got != want {
			t.Fatalf("request %d after %s went down reached %s, want rendezvous choice %s", i, pinned, got, want)
		}
		ck := stickyCookie(r, "vf_session")
		if ck == nil || ck.Value[:sessionLen] != cookie.Value[:sessionLen] {
			t.Fatalf("request %d: the move did not re-sign the same session: %v", i, ck)
		}
		v, ok := signer.verify(ck.Value)
		if !ok || v.tag != signer.tag(want) {
			t.Fatalf("re-signed cookie %q does not name %s", ck.Value, want)
		}
		moved = ck
	}
	if n := moves.Len(); n != 1 {
		t.Fatalf("store holds %d entries after one session moved, want 1", n)
	}

	health.setDown()
	for _, ck := range []*http.Cookie{cookie, moved} {
		for range 3 {
			r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(ck.Value, "198.51.100.1"), "")
			if got := r.header.Get("X-Backend"); got != want {
				t.Fatalf("after %s recovered, cookie %q went to %s, want it to stay on %s", pinned, ck.Value, got, want)
			}
		}
	}
	// Once stored, the move decides for both cookies, the new one too.
	for outcome, want := range map[string]float64{"new": 1, "hit": 5, "repin": 1, "moved": 4 + 6} {
		if got := counterValue(t, tp.reg, "veloflux_sticky_requests_total", map[string]string{"pool": "web", "outcome": outcome}); got != want {
			t.Errorf("veloflux_sticky_requests_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// TestStickyCookieLifetime: a cookie is honoured until its TTL has passed since it was signed,
// signed again once half of that has passed, and after it a new session starts.
func TestStickyCookieLifetime(t *testing.T) {
	_, snap := stickyPool(t, "round_robin", 3)
	cfg := stickyConfig()
	tp := startProxy(t, cfg, Options{}, snap)
	c := newClient(t)
	signer := tp.settings.Load().signer
	first := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
	orig, ok := signer.verify(stickyCookie(first, "vf_session").Value)
	if !ok {
		t.Fatal("issued cookie does not verify")
	}
	pinned := first.header.Get("X-Backend")
	tests := []struct {
		name      string
		age       time.Duration
		wantSame  bool // same session, same backend
		wantFresh bool // a new cookie is set
	}{
		{"young", cfg.Sticky.TTL / 4, true, false},
		{"past half its TTL", cfg.Sticky.TTL * 3 / 4, true, true},
		{"expired", cfg.Sticky.TTL + time.Minute, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value := signer.sign(orig.raw, orig.tag, time.Now().Add(-tt.age))
			var sameBackend bool
			// An expired session starts anew wherever the policy puts it, which may be the
			// old backend: only the session ID tells.
			r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(value, "198.51.100.1"), "")
			sameBackend = r.header.Get("X-Backend") == pinned
			ck := stickyCookie(r, "vf_session")
			if (ck != nil) != tt.wantFresh {
				t.Fatalf("cookie set = %v, want %v", ck != nil, tt.wantFresh)
			}
			if tt.wantSame && !sameBackend {
				t.Fatalf("went to %s, want %s", r.header.Get("X-Backend"), pinned)
			}
			if ck == nil {
				return
			}
			got, ok := signer.verify(ck.Value)
			if !ok {
				t.Fatalf("new cookie %q does not verify", ck.Value)
			}
			if (got.session == orig.session) != tt.wantSame {
				t.Fatalf("session kept = %v, want %v", got.session == orig.session, tt.wantSame)
			}
			if since := time.Since(got.issued); since > time.Minute || since < -time.Second {
				t.Fatalf("new cookie issued %v ago, want now", since)
			}
		})
	}
}

// TestStickyPinsSurviveApply uses a session whose pin differs from where rendezvous hashing
// would put it in the new table, so a pin lost by Apply would show as a move.
func TestStickyPinsSurviveApply(t *testing.T) {
	bs, snap := stickyPool(t, "round_robin", 3)
	tp := startProxy(t, stickyConfig(), Options{}, snap)
	c := newClient(t)
	extra := newBackend(t, "b3", nil)
	newIDs := []string{"b0", "b1", "b2", "b3"}

	var cookie *http.Cookie
	var pinned string
	for i := 0; i < 50 && cookie == nil; i++ {
		r := send(t, c, http.MethodGet, tp.url+"/", "", nil, "")
		ck := stickyCookie(r, "vf_session")
		if ck == nil {
			t.Fatalf("no cookie issued")
		}
		if be := r.header.Get("X-Backend"); rendezvousChoice(ck.Value[:sessionLen], newIDs...) != be {
			cookie, pinned = ck, be
		}
	}
	if cookie == nil {
		t.Fatalf("50 sessions all pinned where rendezvous would put them")
	}

	next := onePoolSnapshot("round_robin", true, member("b3", extra.addr(), 1),
		member("b2", bs[2].addr(), 1), member("b1", bs[1].addr(), 1), member("b0", bs[0].addr(), 1))
	if err := tp.Apply(next); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i := 0; i < 5; i++ {
		r := send(t, c, http.MethodGet, tp.url+"/", "", withCookie(cookie.Value, "198.51.100.1"), "")
		if got := r.header.Get("X-Backend"); got != pinned {
			t.Fatalf("after Apply the session went to %s, want its pin %s", got, pinned)
		}
	}
}

func TestLocalSessions(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		max    int
		puts   []string // sessions pinned in order, each to "be-"+session
		expiry time.Duration
		get    string
		wantOK bool
	}{
		{"live pin", 10, []string{"s1"}, time.Minute, "s1", true},
		{"missing", 10, []string{"s1"}, time.Minute, "s2", false},
		{"expired", 10, []string{"s1"}, 0, "s1", false},
		{"least recently used evicted", 2, []string{"s1", "s2", "s3"}, time.Minute, "s1", false},
		{"newest kept", 2, []string{"s1", "s2", "s3"}, time.Minute, "s3", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewLocalSessions(tt.max)
			s.now = func() time.Time { return now }
			for _, id := range tt.puts {
				s.Put(id, "be-"+id, now.Add(tt.expiry))
			}
			backend, exp, ok := s.Get(tt.get)
			if ok != tt.wantOK {
				t.Fatalf("Get(%s) ok = %v, want %v", tt.get, ok, tt.wantOK)
			}
			if ok && (backend != "be-"+tt.get || !exp.Equal(now.Add(tt.expiry))) {
				t.Fatalf("Get(%s) = %s %v", tt.get, backend, exp)
			}
			if s.Len() > tt.max {
				t.Fatalf("Len %d above max %d", s.Len(), tt.max)
			}
		})
	}
}

// TestLocalSessionsByBackend: live pins are counted by backend; expired ones are not.
func TestLocalSessionsByBackend(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewLocalSessions(10)
	s.now = func() time.Time { return now }
	s.Put("s1", "a", now.Add(time.Minute))
	s.Put("s2", "a", now.Add(time.Minute))
	s.Put("s3", "b", now.Add(time.Minute))
	s.Put("s4", "b", now) // expires now: not live
	got := s.ByBackend()
	if len(got) != 2 || got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("ByBackend = %v, want a: 2, b: 1", got)
	}
}
