package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2/simplelru"
)

// A sticky cookie is "<session>.<mac>": session is 16 random bytes and mac the first 16
// bytes of HMAC-SHA256(secret, session), both base64url without padding. The cookie names
// no backend: the pin lives in the SessionStore, so a client cannot pick its backend and a
// pin can move (failover) without rewriting cookies.
const (
	sessionBytes = 16
	macBytes     = 16
	sessionLen   = 22 // base64.RawURLEncoding.EncodedLen(sessionBytes)
	cookieLen    = sessionLen + 1 + 22
)

// cookieEncoding is strict so that each session has exactly one valid cookie value.
var cookieEncoding = base64.RawURLEncoding.Strict()

// StickyConfig says how sticky-session cookies look.
type StickyConfig struct {
	// CookieName is the cookie's name. Default "vf_session".
	CookieName string
	// TTL is how long a pin and its cookie live without use. Default 1h.
	TTL time.Duration
	// Secure, HTTPOnly and SameSite are the cookie attributes. Defaults false, true, Lax.
	Secure   bool
	HTTPOnly bool
	SameSite http.SameSite
	// Secret keys the cookie HMAC. Nodes sharing sessions must share it. Required (>= 32
	// bytes) when any pool is sticky.
	Secret []byte
}

// cookieSigner signs and verifies session cookies, reusing HMAC states across requests.
type cookieSigner struct {
	macs sync.Pool
}

func newCookieSigner(secret []byte) *cookieSigner {
	key := append([]byte(nil), secret...)
	return &cookieSigner{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

func (s *cookieSigner) mac(session []byte, out *[sha256.Size]byte) {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(session)
	h.Sum(out[:0])
	s.macs.Put(h)
}

// verify returns the session part of a well-formed, correctly signed cookie value. Forged,
// tampered or malformed values return ok=false: the client simply gets a new session.
func (s *cookieSigner) verify(value string) (session string, ok bool) {
	if len(value) != cookieLen || value[sessionLen] != '.' {
		return "", false
	}
	var raw [sessionBytes]byte
	var gotMAC [macBytes]byte
	if n, err := cookieEncoding.Decode(raw[:], []byte(value[:sessionLen])); err != nil || n != sessionBytes {
		return "", false
	}
	if n, err := cookieEncoding.Decode(gotMAC[:], []byte(value[sessionLen+1:])); err != nil || n != macBytes {
		return "", false
	}
	var want [sha256.Size]byte
	s.mac(raw[:], &want)
	if !hmac.Equal(gotMAC[:], want[:macBytes]) {
		return "", false
	}
	return value[:sessionLen], true
}

// newSession returns a fresh session ID and its signed cookie value.
func (s *cookieSigner) newSession() (session, value string) {
	var raw [sessionBytes]byte
	rand.Read(raw[:]) // never fails: crypto/rand crashes the process rather than return an error
	v := s.sign(raw)
	return v[:sessionLen], v
}

// sign returns the cookie value of a session.
func (s *cookieSigner) sign(raw [sessionBytes]byte) string {
	var sum [sha256.Size]byte
	s.mac(raw[:], &sum)
	buf := make([]byte, cookieLen)
	cookieEncoding.Encode(buf, raw[:])
	buf[sessionLen] = '.'
	cookieEncoding.Encode(buf[sessionLen+1:], sum[:macBytes])
	return string(buf)
}

// LocalSessions is an in-process SessionStore with a bounded number of pins: when full,
// the least recently used pin is dropped (its client is re-pinned by rendezvous hashing,
// which lands on the same backend while the backend set is unchanged).
type LocalSessions struct {
	mu  sync.Mutex
	lru *lru.LRU[string, localPin]
	now func() time.Time
}

type localPin struct {
	backend string
	expires time.Time
}

// NewLocalSessions returns a store holding at most max pins (default 100000 when max <= 0).
func NewLocalSessions(max int) *LocalSessions {
	if max <= 0 {
		max = 100000
	}
	l, err := lru.NewLRU[string, localPin](max, nil)
	if err != nil {
		panic(err) // only for size <= 0, excluded above
	}
	return &LocalSessions{lru: l, now: time.Now}
}

// Get returns the live pin of session.
func (s *LocalSessions) Get(session string) (string, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.lru.Get(session)
	if !ok {
		return "", time.Time{}, false
	}
	if !p.expires.After(s.now()) {
		s.lru.Remove(session)
		return "", time.Time{}, false
	}
	return p.backend, p.expires, true
}

// Put pins session to backend until expires.
func (s *LocalSessions) Put(session, backend string, expires time.Time) {
	s.mu.Lock()
	s.lru.Add(session, localPin{backend: backend, expires: expires})
	s.mu.Unlock()
}

// ByBackend counts the live pins of each backend.
func (s *LocalSessions) ByBackend() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make(map[string]int)
	for _, p := range s.lru.Values() {
		if p.expires.After(now) {
			out[p.backend]++
		}
	}
	return out
}

// Len returns the number of pins held.
func (s *LocalSessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
