package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
)

// Config says which ACME server to use and where the challenges are answered.
type Config struct {
	// Directory is the ACME directory URL. Default Let's Encrypt production.
	Directory string
	// CARootFile is a PEM file of CA certificates trusted for the ACME server's HTTPS, beside
	// the system roots. Default "" = the system roots only.
	CARootFile string
	// Email is the account contact. Default "" = none.
	Email string
	// Storage keeps certificates, account keys, challenge tokens and locks. Required: a
	// consulkv.Storage to share them across nodes, or a certmagic.FileStorage.
	Storage certmagic.Storage
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn one challenge type off, for a
	// site whose port 80 (or 443) the CA cannot reach. Default false: both are used.
	DisableHTTPChallenge, DisableTLSALPNChallenge bool
	// RenewCheckInterval is how often certificates are checked for renewal. Default 10m.
	RenewCheckInterval time.Duration
	// OCSPCheckInterval is how often OCSP staples are refreshed. Default 1h.
	OCSPCheckInterval time.Duration
}

// DefaultConfig returns the defaults documented on each field; Storage and the addresses
// are left to the caller.
func DefaultConfig() Config {
	return Config{
		Directory:          certmagic.LetsEncryptProductionCA,
		RenewCheckInterval: certmagic.DefaultRenewCheckInterval,
		OCSPCheckInterval:  certmagic.DefaultOCSPCheckInterval,
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("directory %q: want an https URL", c.Directory))
	}
	if c.Storage == nil {
		errs = append(errs, errors.New("storage: required"))
	}
	if c.DisableHTTPChallenge && c.DisableTLSALPNChallenge {
		errs = append(errs, errors.New("both challenge types are off: no certificate could be obtained"))
	}
	if c.RenewCheckInterval <= 0 || c.OCSPCheckInterval <= 0 {
		errs = append(errs, errors.New("check intervals: want > 0"))
	}
	return errors.Join(errs...)
}

// Manager obtains, renews and serves the certificates of the names it is given.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	m      *metrics

	mu       sync.Mutex
	names    map[string]struct{} // the names to manage, as last set
	managed  map[string]struct{} // the names handed to certmagic
	state    map[string]*nameState
	changed  chan struct{} // signals Run that names changed; buffered 1
	stopOnce sync.Once

	listening bool // SetListeners was called; set before Run, read by Run
}

// nameState is what Status shows of one name.
type nameState struct {
	lastAttempt, lastSuccess time.Time
	lastError                string
	failures                 int // failed orders in a row
}

// New builds a Manager. Its certificate cache runs from here on (certmagic starts its
// maintenance with the cache); Run, or Close for a node that will not run, stops it.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	roots, err := trustedRoots(cfg.CARootFile)
	if err != nil {
		return nil, err
	}

	mgr := &Manager{
		cfg: cfg, log: log,
		names: map[string]struct{}{}, managed: map[string]struct{}{}, state: map[string]*nameState{},
		changed: make(chan struct{}, 1),
	}
	zl := newZapLogger(log)
	mgr.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return mgr.magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		OCSPCheckInterval:  cfg.OCSPCheckInterval,
		Logger:             zl,
	})
	mgr.magic = certmagic.New(mgr.cache, certmagic.Config{
		Storage: cfg.Storage,
		Logger:  zl,
		OnEvent: mgr.onEvent,
	})
	mgr.issuer = certmagic.NewACMEIssuer(mgr.magic, certmagic.ACMEIssuer{
		CA:                      cfg.Directory,
		TestCA:                  cfg.Directory, // no fallback to Let's Encrypt's staging server
		Email:                   cfg.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    cfg.DisableHTTPChallenge,
		DisableTLSALPNChallenge: cfg.DisableTLSALPNChallenge,
		Logger:                  zl,
	})
	mgr.magic.Issuers = []certmagic.Issuer{mgr.issuer}
	if mgr.m, err = newMetrics(reg, mgr); err != nil {
		mgr.cache.Stop()
		return nil, err
	}
	return mgr, nil
}

// SetListeners tells the Manager the bound addresses of the listeners that answer HTTP-01
// (plain) and TLS-ALPN-01 (TLS) challenges, which must share a host. Call it once, before Run.
// certmagic would otherwise bind challenge listeners of its own on :80 and :443; on these
// addresses it finds the ports taken and leaves the challenges to VeloFlux's listeners.
func (m *Manager) SetListeners(httpAddr, tlsAddr string) error {
	httpHost, httpPort, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return fmt.Errorf("acme: HTTP challenge address: %w", err)
	}
	tlsHost, tlsPort, err := net.SplitHostPort(tlsAddr)
	if err != nil {
		return fmt.Errorf("acme: TLS challenge address: %w", err)
	}
	hp, err := strconv.Atoi(httpPort)
	if err != nil || hp == 0 {
		return fmt.Errorf("acme: HTTP challenge address %s: want a bound port", httpAddr)
	}
	tp, err := strconv.Atoi(tlsPort)
	if err != nil || tp == 0 {
		return fmt.Errorf("acme: TLS challenge address %s: want a bound port", tlsAddr)
	}
	if httpHost != tlsHost {
		// certmagic has one ListenHost for both solvers; with different hosts it would find
		// one of the addresses free and start its own listener there.
		return fmt.Errorf("acme: the plain (%s) and TLS (%s) listeners must bind the same host for ACME challenges", httpAddr, tlsAddr)
	}
	m.issuer.ListenHost, m.issuer.AltHTTPPort, m.issuer.AltTLSALPNPort = httpHost, hp, tp
	m.listening = true
	return nil
}

// trustedRoots is the system roots plus the certificates of file, nil (the system roots)
// without a file.
func trustedRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("acme: CA root: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("acme: CA root %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// SetNames replaces the names to manage: the exact hosts VeloFlux routes. Names that are not
// exact host names (wildcards, IP addresses, empty) are left out. New names are ordered in the
// background once Run runs; names dropped stop being renewed and served. Safe to call at any
// time.
func (m *Manager) SetNames(names []string) {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		if n = Eligible(n); n != "" {
			set[n] = struct{}{}
		}
	}
	m.mu.Lock()
	m.names = set
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Eligible returns host as a name ACME can certify over HTTP-01 and TLS-ALPN-01, lower-case and
// without port, or "" when it is not one: empty, a wildcard, an IP address or a single label.
func Eligible(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case host == "", strings.Contains(host, "*"), net.ParseIP(host) != nil, !strings.Contains(host, "."):
		return ""
	}
	return host
}

// Run manages the names set so far and those set later, until ctx ends; then it stops the
// certificate cache and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	defer m.Close()
	if !m.listening {
		return errors.New("acme: Run before SetListeners")
	}
	for {
		m.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-m.changed:
		}
	}
}

// Close stops the certificate cache of a Manager; Run calls it when it returns.
func (m *Manager) Close() { m.stopOnce.Do(m.cache.Stop) }

// sync hands new names to certmagic and takes dropped ones out of its cache.
func (m *Manager) sync(ctx context.Context) {
	m.mu.Lock()
	var add, drop []string
	for n := range m.names {
		if _, ok := m.managed[n]; !ok {
			add = append(add, n)
			m.managed[n] = struct{}{}
			if m.state[n] == nil {
				m.state[n] = &nameState{}
			}
		}
	}
	for n := range m.managed {
		if _, ok := m.names[n]; !ok {
			drop = append(drop, n)
			delete(m.managed, n)
			delete(m.state, n)
		}
	}
	m.mu.Unlock()
	if len(drop) > 0 {
		subjects := make([]certmagic.SubjectIssuer, len(drop))
		for i, n := range drop {
			subjects[i] = certmagic.SubjectIssuer{Subject: n}
		}
		m.cache.RemoveManaged(subjects)
		m.log.Info("ACME names no longer routed: their certificates are no longer served or renewed", "names", drop)
	}
	if len(add) > 0 {
		slices.Sort(add)
		m.log.Info("ACME names to manage", "names", add)
		// Async: each name loads from storage or is ordered in its own goroutine, retried with
		// backoff by certmagic while ctx lasts.
		if err := m.magic.ManageAsync(ctx, add); err != nil {
			m.log.Error("ACME: managing names", "names", add, "error", err)
		}
	}
}

// TLSConfig returns the TLS settings of the TLS listener: certificates of the managed names,
// and TLS-ALPN-01 challenge answers (ALPN acme-tls/1) beside h2 and http/1.1.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.magic.TLSConfig()
	c.NextProtos = append([]string{"h2", "http/1.1"}, c.NextProtos...)
	c.MinVersion = tls.VersionTLS12
	return c
}

// GetCertificate returns the certificate for the name the client asked for, if it is managed.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// HandleHTTPChallenge answers r when it is an HTTP-01 challenge request of this node or, with
// shared storage, of another node, and reports whether it did.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	return m.issuer.HandleHTTPChallenge(w, r)
}

// onEvent follows certmagic's orders for metrics and Status. It never vetoes an event.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	kind := "obtain"
	if renewal {
		kind = "renew"
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state[name]
	if st == nil {
		st = &nameState{} // a name dropped meanwhile; counted, not shown
	}
	switch event {
	case "cert_obtaining":
		st.lastAttempt = now
		m.m.orders.Inc()
	case "cert_obtained":
		st.lastSuccess, st.lastError, st.failures = now, "", 0
		m.m.results.WithLabelValues(kind, "success").Inc()
	case "cert_failed":
		err, _ := data["error"].(error)
		st.lastError, st.failures = fmt.Sprint(err), st.failures+1
		m.m.results.WithLabelValues(kind, "failure").Inc()
		m.log.Error("ACME order failed", "name", name, "kind", kind, "error", err)
	}
	return nil
}
