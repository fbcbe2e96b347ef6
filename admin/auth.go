package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// failure is one client IP's record of bad-credential attempts.
type failure struct {
	count       int       // bad attempts since the last success
	lockedUntil time.Time // zero when not locked
}

// guard checks basic-auth credentials and locks out client IPs that keep failing.
type guard struct {
	userSum, passSum [sha256.Size]byte

	maxFailures         int
	lockout, maxLockout time.Duration

	// mu covers the lockout check, the credential comparison and the failure update as one
	// step, so parallel guesses from one IP cannot all slip in before the first is counted.
	mu       sync.Mutex
	failures *simplelru.LRU[netip.Addr, *failure]
}

func newGuard(cfg Config) (*guard, error) {
	table, err := simplelru.NewLRU[netip.Addr, *failure](cfg.TrackedClients, nil)
	if err != nil {
		return nil, fmt.Errorf("failure table: %w", err)
	}
	return &guard{
		// Comparing digests rather than the secrets themselves gives both sides the same
		// length, so neither the comparison's duration nor its early exit on a length
		// mismatch says anything about the configured user or password.
		userSum:     sha256.Sum256([]byte(cfg.User)),
		passSum:     sha256.Sum256([]byte(cfg.Password)),
		maxFailures: cfg.MaxFailures,
		lockout:     cfg.Lockout,
		maxLockout:  cfg.MaxLockout,
		failures:    table,
	}, nil
}

// verdict is what the guard decided about one request.
type verdict int

const (
	allowed   verdict = iota
	noCreds           // no basic-auth header: a browser's first request, not a guess
	badCreds          // wrong user or password; counted towards a lockout
	lockedOut         // client IP locked out; credentials were not looked at
)

// check decides on one request from client ip. For badCreds, failures is the client's count
// after this attempt and lockedFor the lockout it triggered (zero if none); for lockedOut,
// retryAfter is the time left.
func (g *guard) check(ip netip.Addr, r *http.Request, now time.Time) (v verdict, failures int, lockedFor, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()

	// Get, not Peek: every request refreshes the client's recency, so the clients still
	// hammering the API are the last to be evicted (and so unlocked) when the table is full.
	f, tracked := g.failures.Get(ip)
	if tracked && now.Before(f.lockedUntil) {
		// Attempts while locked are not counted: the lockout already stops the guessing, and
		// extending it would keep the real operator out for as long as an attacker keeps trying.
		return lockedOut, f.count, 0, f.lockedUntil.Sub(now)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return noCreds, 0, 0, 0
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	// Both comparisons always run, so timing does not tell a wrong user from a wrong password.
	if subtle.ConstantTimeCompare(u[:], g.userSum[:])&subtle.ConstantTimeCompare(p[:], g.passSum[:]) == 1 {
		if tracked {
			g.failures.Remove(ip)
		}
		return allowed, 0, 0, 0
	}
	if !tracked {
		f = &failure{}
		g.failures.Add(ip, f)
	}
	f.count++
	if f.count >= g.maxFailures {
		lockedFor = g.lockoutFor(f.count)
		f.lockedUntil = now.Add(lockedFor)
	}
	return badCreds, f.count, lockedFor, 0
}

// lockoutFor returns the lockout earned by the count-th bad attempt (count >= maxFailures):
// lockout for the first, doubling for each one after, capped at maxLockout.
func (g *guard) lockoutFor(count int) time.Duration {
	d := g.lockout
	for i := g.maxFailures; i < count && d < g.maxLockout; i++ {
		d *= 2
	}
	return min(d, g.maxLockout)
}

// tracked returns how many client IPs the failure table holds.
func (g *guard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures.Len()
}

// authenticate runs the guard on r and writes the refusal if there is one. It reports whether
// the request may proceed.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	ip := peerIP(r.RemoteAddr)
	v, failures, lockedFor, retryAfter := s.guard.check(ip, r, s.now())
	switch v {
	case allowed:
		return true
	case lockedOut:
		s.log.Debug("admin request from locked-out client",
			slog.String("remote_ip", ip.String()), slog.String("path", r.URL.Path),
			slog.Duration("retry_after", retryAfter))
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(retryAfter), 10))
		s.writeError(w, http.StatusTooManyRequests, "too many failed login attempts; retry later")
		return false
	case noCreds:
		// Every browser session starts with one of these, so it is not worth a warning.
		s.log.Debug("admin request without credentials",
			slog.String("remote_ip", ip.String()), slog.String("path", r.URL.Path))
	case badCreds:
		attrs := []any{
			slog.String("remote_ip", ip.String()),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("failures", failures),
		}
		if lockedFor > 0 {
			attrs = append(attrs, slog.Duration("locked_for", lockedFor))
		}
		// Neither the user nor the password tried goes in the log: operators paste passwords
		// into the user field, and logs travel further than the admin port.
		s.log.Warn("admin authentication failed", attrs...)
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="veloflux admin"`)
	s.writeError(w, http.StatusUnauthorized, "authentication required")
	return false
}

// retryAfterSeconds rounds up, so a client that waits exactly that long is no longer locked,
// and never says 0, which clients read as "retry now".
func retryAfterSeconds(d time.Duration) int64 {
	secs := int64((d + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// peerIP returns the socket peer's address. Forwarding headers are deliberately ignored: the
// admin port is not behind the proxy, and a client could set them to dodge its own lockout or
// to lock someone else out. Addresses that do not parse share the zero key, which fails closed.
func peerIP(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}
