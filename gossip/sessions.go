package gossip

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// Broadcaster sends one encoded entry to the cluster (satisfied by *Node). It must not block:
// Sessions calls it on the request path.
type Broadcaster interface {
	Broadcast(msg []byte) error
}

// hashedKeyPrefix marks a session key stored as its SHA-256 digest. Every key that starts with it
// is hashed too, even when short, so a stored key with the prefix is always a digest and no raw
// session ID can land on another session's digest.
const hashedKeyPrefix = "sha256:"

// Label values of veloflux_gossip_session_errors_total, all exported from the start so a dashboard
// sees 0 rather than a missing series.
const (
	sessionErrFull      = "full"      // the session table holds MaxEntriesPerKind entries
	sessionErrInvalid   = "invalid"   // the store or encoder refused the entry (empty ID, backend ID too long)
	sessionErrExpired   = "expired"   // expires was not in the future: nothing to pin
	sessionErrBroadcast = "broadcast" // stored locally but the broadcaster refused the message
)

// Sessions is a replicated sticky-session store: it has the method set of proxy.SessionStore
// (without importing proxy) and keeps pins as KindSession entries whose value is the backend ID.
// The proxy writes only moves (a session whose cookie names a backend that failed or was
// drained), since a cookie carries its own pin; so the table holds nothing for the sessions of
// healthy backends. A Put is stored locally and broadcast at once; peers that miss the
// broadcast get the move by push/pull. Neither method touches the network synchronously. Safe
// for concurrent use.
type Sessions struct {
	store  *Store
	b      Broadcaster
	logger *slog.Logger
	errs   *prometheus.CounterVec
}

// NewSessions returns a Sessions writing to store and broadcasting through b. A nil logger
// discards; a nil reg leaves the metrics unregistered. Store metrics are registered separately
// (RegisterStoreMetrics), since the store is shared with the health and drain tables.
func NewSessions(store *Store, b Broadcaster, logger *slog.Logger, reg prometheus.Registerer) (*Sessions, error) {
	if store == nil {
		return nil, errors.New("gossip: sessions: nil store")
	}
	if b == nil {
		return nil, errors.New("gossip: sessions: nil broadcaster")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sessions{
		store:  store,
		b:      b,
		logger: logger,
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_gossip_session_errors_total",
			Help: "Sticky-session pins not replicated, by reason (full, invalid, expired, broadcast).",
		}, []string{"reason"}),
	}
	for _, r := range []string{sessionErrFull, sessionErrInvalid, sessionErrExpired, sessionErrBroadcast} {
		s.errs.WithLabelValues(r)
	}
	if err := promreg.Register(reg, s.errs); err != nil {
		return nil, fmt.Errorf("gossip: sessions: register metrics: %w", err)
	}
	return s, nil
}

// sessionKey maps a session ID to its store key. IDs longer than MaxKeyBytes cannot travel in an
// entry, so they are replaced by a digest every node derives alike, and a pin written on one node
// is found on every other. SHA-256 rather than a fast hash: pool names and session IDs are
// arbitrary strings, and a collision would silently hand one client another's backend. IDs that
// already start with the digest prefix are hashed as well, keeping the two key spaces apart.
func sessionKey(session string) string {
	if len(session) <= MaxKeyBytes && !strings.HasPrefix(session, hashedKeyPrefix) {
		return session
	}
	sum := sha256.Sum256([]byte(session))
	return hashedKeyPrefix + hex.EncodeToString(sum[:])
}

// Get returns the backend pinned to session and when the pin expires. Unknown, deleted and
// expired pins report ok false. A pin written without expiry (never by Put) reports a zero time.
func (s *Sessions) Get(session string) (backendID string, expires time.Time, ok bool) {
	e, found := s.store.Get(KindSession, sessionKey(session))
	if !found {
		return "", time.Time{}, false
	}
	if e.Expires != 0 {
		expires = time.Unix(0, e.Expires)
	}
	return string(e.Value), expires, true
}

// Put pins session to backendID until expires and broadcasts the pin. It never blocks and never
// fails the caller: a pin that cannot be stored or sent only costs stickiness, so refusals are
// counted in veloflux_gossip_session_errors_total and logged at debug. The expiry is written as an
// absolute time on the store's clock, so every node drops the pin together.
func (s *Sessions) Put(session, backendID string, expires time.Time) {
	// The store takes a TTL; measuring it on the store's own clock keeps the absolute expiry it
	// writes equal to expires, whatever clock the store runs on.
	ttl := expires.Sub(s.store.clock.physical())
	if ttl <= 0 {
		// Store.Put treats ttl <= 0 as "never expires": an already expired pin must not become
		// a permanent one.
		s.fail(sessionErrExpired, fmt.Errorf("gossip: sessions: put: expiry %s is not in the future", expires))
		return
	}
	e, err := s.store.Put(KindSession, sessionKey(session), []byte(backendID), ttl)
	if err != nil {
		reason := sessionErrInvalid
		if errors.Is(err, ErrStoreFull) {
			reason = sessionErrFull
		}
		s.fail(reason, fmt.Errorf("gossip: sessions: %w", err))
		return
	}
	msg, err := AppendEntry(nil, e)
	if err != nil {
		s.fail(sessionErrInvalid, fmt.Errorf("gossip: sessions: %w", err))
		return
	}
	if err := s.b.Broadcast(msg); err != nil {
		// The pin stays in the local store; the next push/pull carries it to the peers.
		s.fail(sessionErrBroadcast, fmt.Errorf("gossip: sessions: broadcast pin: %w", err))
	}
}

// fail counts and logs a pin that was not replicated. Only at debug: a full table fails every new
// pin, and the counter is what an operator watches. The session ID is not added as a field, as
// logs outlive sessions; store errors still name the key.
func (s *Sessions) fail(reason string, err error) {
	s.errs.WithLabelValues(reason).Inc()
	s.logger.Debug("session pin not replicated", "reason", reason, "err", err)
}

// RegisterStoreMetrics registers two metrics computed from store at scrape time:
// veloflux_gossip_state_entries{kind} (Store.Len: entries, tombstones and uncollected expired
// entries, the number MaxEntriesPerKind bounds) and veloflux_gossip_state_refusals_total{reason}
// (Store.Stats: full, invalid, drift, truncated). Reading at scrape time keeps the store free of
// metric code on its merge path. A nil reg registers nothing.
func RegisterStoreMetrics(store *Store, reg prometheus.Registerer) error {
	if store == nil {
		return errors.New("gossip: store metrics: nil store")
	}
	if reg == nil {
		return nil
	}
	c := &storeCollector{
		store: store,
		entries: prometheus.NewDesc("veloflux_gossip_state_entries",
			"Entries held in the replicated state by kind (session, health, drain), tombstones included.",
			[]string{"kind"}, nil),
		refusals: prometheus.NewDesc("veloflux_gossip_state_refusals_total",
			"Entries refused by the replicated state by reason (full, invalid, drift), and truncated full-state encodings (truncated).",
			[]string{"reason"}, nil),
	}
	if err := promreg.Register(reg, c); err != nil {
		return fmt.Errorf("gossip: register store metrics: %w", err)
	}
	return nil
}

type storeCollector struct {
	store             *Store
	entries, refusals *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.refusals
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for k := KindSession; k <= kindMax; k++ {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(c.store.Len(k)), k.String())
	}
	st := c.store.Stats()
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"full", st.Full}, {"invalid", st.Invalid}, {"drift", st.Drift}, {"truncated", st.Truncated}} {
		ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(r.n), r.reason)
	}
}

// ByBackend counts the live moves by the backend each session moved to, as this node's copy of
// the table has them (sessions that never moved are not stored).
func (s *Sessions) ByBackend() map[string]int {
	out := make(map[string]int)
	s.store.Range(KindSession, func(e Entry) bool {
		out[string(e.Value)]++
		return true
	})
	return out
}
