package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// A sticky cookie is "<session>.<pin>", both base64url without padding. session is 16 random
// bytes. pin is tag (8) | issued (4) | mac (16): tag is a keyed hash of the backend the session
// is pinned to, issued the Unix second the cookie was signed, and mac the first 16 bytes of
// HMAC-SHA256(secret, session | tag | issued). The cookie carries its own pin, so every node
// that shares the secret honours it at once, with no lookup and no coordination: a session's
// second request may reach another node a microsecond after the first and still land on the
// same backend. The tag is keyed so a client learns nothing about backend IDs and cannot pick
// one. Only moves (the pinned backend failed or was drained) go to the SessionStore.
const (
	sessionBytes = 16
	tagBytes     = 8
	issuedBytes  = 4
	macBytes     = 16
	pinBytes     = tagBytes + issuedBytes + macBytes
	sessionLen   = 22 // base64.RawURLEncoding.EncodedLen(sessionBytes)
	pinLen       = 38 // base64.RawURLEncoding.EncodedLen(pinBytes)
	cookieLen    = sessionLen + 1 + pinLen
)

// Domain separation of the two things the secret keys: a cookie MAC and a backend tag can never
// be confused for each other.
const (
	macDomain byte = 'c'
	tagDomain byte = 'b'
)

// cookieEncoding is strict so that each session has exactly one valid cookie value.
var cookieEncoding = base64.RawURLEncoding.Strict()

// StickyConfig says how sticky-session cookies look: the sticky section of the config file.
type StickyConfig struct {
	// CookieName is the cookie's name, an RFC 6265 token. Default "vf_session".
	CookieName string `koanf:"cookie_name"`
	// TTL is how long a session and its cookie live without use. Default 1h, > 0. A cookie is
	// signed again, with a new issue time, when more than half of it has passed.
	TTL time.Duration `koanf:"ttl"`
	// Secure sends the cookie over HTTPS only. Default false.
	Secure bool `koanf:"secure"`
	// HTTPOnly hides the cookie from page scripts. Default true.
	HTTPOnly bool `koanf:"http_only"`
	// SameSite is lax, strict or none (lower-case; the config loader lower-cases the file's
	// value). Default "lax"; none requires Secure, because browsers drop SameSite=None
	// cookies that are not Secure.
	SameSite string `koanf:"same_site"`
	// Secret keys the cookie HMAC and the backend tags. Nodes sharing sessions must share it.
	// Default "": the proxy generates a random key, and cookies then die with the process.
	// At least 32 bytes when any pool is sticky (a rule of the config file, which knows the
	// pools).
	Secret string `koanf:"secret" redact:"true"`
}

// SameSite values of StickyConfig.
const (
	SameSiteLax    = "lax"
	SameSiteStrict = "strict"
	SameSiteNone   = "none"
)

// Validate reports every problem at once, with paths relative to the sticky section.
func (c StickyConfig) Validate() error {
	var e fielderr.Errors
	switch {
	case c.CookieName == "":
		e.Add("cookie_name", "required")
	case !isToken(c.CookieName):
		e.Add("cookie_name", "invalid cookie name %s: use letters, digits and !#$%%&'*+-.^_`|~ only", fielderr.Quote(c.CookieName))
	}
	e.Positive("ttl", c.TTL)
	e.OneOf("same_site", c.SameSite, SameSiteLax, SameSiteStrict, SameSiteNone)
	if c.SameSite == SameSiteNone && !c.Secure {
		e.Add("same_site", "\"none\" requires sticky.secure: true (browsers drop SameSite=None cookies that are not Secure)")
	}
	return e.Err()
}

// sameSite is SameSite as net/http's cookie attribute; Validate has refused other values.
func (c *StickyConfig) sameSite() http.SameSite {
	switch c.SameSite {
	case SameSiteStrict:
		return http.SameSiteStrictMode
	case SameSiteNone:
		return http.SameSiteNoneMode
	default:
		return http.SameSiteLaxMode
	}
}

// isToken reports whether s is an RFC 9110 token, as cookie names must be.
func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

// backendTag names a backend in a cookie: the first 8 bytes of HMAC-SHA256(secret, 'b' | ID).
// Two backends of one pool share a tag with probability 2^-64.
type backendTag [tagBytes]byte

// cookieSigner signs and verifies session cookies, reusing HMAC states across requests.
type cookieSigner struct {
	macs sync.Pool
}

func newCookieSigner(secret []byte) *cookieSigner {
	key := append([]byte(nil), secret...)
	return &cookieSigner{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum writes HMAC-SHA256(secret, data) to out. data starts with its domain byte.
func (s *cookieSigner) sum(data []byte, out *[sha256.Size]byte) {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	h.Sum(out[:0])
	s.macs.Put(h)
}

// tag computes the tag of backend id; the request path reads it cached on the upstream.
func (s *cookieSigner) tag(id string) backendTag {
	var sum [sha256.Size]byte
	s.sum(append([]byte{tagDomain}, id...), &sum)
	return backendTag(sum[:tagBytes])
}

// signedPart is what a cookie's MAC covers: macDomain | session | tag | issued.
type signedPart [1 + sessionBytes + tagBytes + issuedBytes]byte

// verifiedCookie is a cookie that verified.
type verifiedCookie struct {
	session string // the session part of the cookie value, its ID in the SessionStore
	raw     [sessionBytes]byte
	tag     backendTag
	issued  time.Time
}

// verify parses and checks a cookie value. Forged, tampered or malformed values return
// ok=false: the client simply gets a new session. Expiry is the caller's to judge.
func (s *cookieSigner) verify(value string) (c verifiedCookie, ok bool) {
	if len(value) != cookieLen || value[sessionLen] != '.' {
		return c, false
	}
	var signed signedPart
	var pin [pinBytes]byte
	if n, err := cookieEncoding.Decode(signed[1:1+sessionBytes], []byte(value[:sessionLen])); err != nil || n != sessionBytes {
		return c, false
	}
	if n, err := cookieEncoding.Decode(pin[:], []byte(value[sessionLen+1:])); err != nil || n != pinBytes {
		return c, false
	}
	signed[0] = macDomain
	copy(signed[1+sessionBytes:], pin[:tagBytes+issuedBytes])
	var want [sha256.Size]byte
	s.sum(signed[:], &want)
	if !hmac.Equal(pin[tagBytes+issuedBytes:], want[:macBytes]) {
		return c, false
	}
	c.session = value[:sessionLen]
	copy(c.raw[:], signed[1:])
	copy(c.tag[:], pin[:tagBytes])
	c.issued = time.Unix(int64(binary.BigEndian.Uint32(pin[tagBytes:])), 0)
	return c, true
}

// newSession returns the cookie value of a fresh session pinned to tag, issued at now.
func (s *cookieSigner) newSession(tag backendTag, now time.Time) string {
	var raw [sessionBytes]byte
	rand.Read(raw[:]) // never fails: crypto/rand crashes the process rather than return an error
	return s.sign(raw, tag, now)
}

// sign returns the cookie value of session raw pinned to tag, issued at now.
func (s *cookieSigner) sign(raw [sessionBytes]byte, tag backendTag, now time.Time) string {
	var signed signedPart
	signed[0] = macDomain
	copy(signed[1:], raw[:])
	copy(signed[1+sessionBytes:], tag[:])
	binary.BigEndian.PutUint32(signed[1+sessionBytes+tagBytes:], uint32(now.Unix()))
	var sum [sha256.Size]byte
	s.sum(signed[:], &sum)
	var pin [pinBytes]byte
	copy(pin[:], signed[1+sessionBytes:])
	copy(pin[tagBytes+issuedBytes:], sum[:macBytes])
	buf := make([]byte, cookieLen)
	cookieEncoding.Encode(buf, raw[:])
	buf[sessionLen] = '.'
	cookieEncoding.Encode(buf[sessionLen+1:], pin[:])
	return string(buf)
}

// upstreamTag caches a backend's tag under one signer; a reload with a new secret makes a new
// signer, and the tag is computed again on first use.
type upstreamTag struct {
	signer *cookieSigner
	tag    backendTag
}

// tagCache is embedded in upstream.
type tagCache struct{ p atomic.Pointer[upstreamTag] }

// tagOf returns the tag of u under signer, computing it once per signer.
func (u *upstream) tagOf(signer *cookieSigner) backendTag {
	if t := u.tags.p.Load(); t != nil && t.signer == signer {
		return t.tag
	}
	t := &upstreamTag{signer: signer, tag: signer.tag(u.id)}
	u.tags.p.Store(t)
	return t.tag
}

// LocalSessions is an in-process SessionStore with a bounded number of moves (sessions whose
// cookie names a backend that failed or was drained): when full, the least recently used move
// is dropped, and its client goes back to the backend its cookie names while that one is up,
// or is moved again by rendezvous hashing, which picks the same backend while the set of
// healthy backends is unchanged.
type LocalSessions struct {
	mu  sync.Mutex
	lru *lru.LRU[string, localPin]
	now func() time.Time
}

type localPin struct {
	backend string
	expires time.Time
}

// NewLocalSessions returns a store holding at most max moves (default 100000 when max <= 0).
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

// ByBackend counts the live moves by the backend each session moved to.
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
