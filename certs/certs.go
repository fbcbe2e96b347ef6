// Package certs serves TLS certificates from PEM files. A client gets the certificate for the
// name it asks for (SNI): an exact name first, then a wildcard one label up, then, for a client
// without SNI, the one for the address it connected to, and last the first certificate listed.
// Files are checked for changes and reloaded without touching open connections; a file that
// no longer loads keeps its previous certificate, logged and counted. A certificate whose leaf
// names an OCSP responder is served with the responder's Good answer stapled (see ocsp.go).
package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/fielderr"
	"github.com/veloflux/veloflux/internal/promreg"
)

// Pair is one certificate with its chain and its private key, as PEM files: an entry of
// global.tls.certificates in the config file.
type Pair struct {
	// CertFile is the PEM certificate with its chain. Required.
	CertFile string `koanf:"cert_file"`
	// KeyFile is its PEM private key. Required. A path, not a secret.
	KeyFile string `koanf:"key_file"`
}

// Validate reports a missing file name, with paths relative to the entry ("cert_file").
// Whether the files load is for New and Reload to say.
func (p Pair) Validate() error {
	var e fielderr.Errors
	if p.CertFile == "" {
		e.Add("cert_file", "required")
	}
	if p.KeyFile == "" {
		e.Add("key_file", "required")
	}
	return e.Err()
}

// Config lists the certificates of a Store.
type Config struct {
	// Pairs are the certificates, in order of preference for a name several cover; the first
	// is the default. At least one.
	Pairs []Pair
	// PollInterval is how often the files are checked for changes. Default 5s; a check reads
	// and hashes the two files of each pair (a few kilobytes).
	PollInterval time.Duration
}

// Store picks a certificate for each TLS handshake (GetCertificate) from the pairs loaded last.
type Store struct {
	cfg Config
	log *slog.Logger
	m   metrics

	mu    sync.Mutex // serialises Reload and stapling's changes
	pairs []pairState
	table atomic.Pointer[table]

	ocspClient *http.Client
}

type pairState struct {
	Pair
	stamp  stamp // of the files last loaded or last reported broken
	failed stamp // of files that failed once at a poll, reported if they fail again
	cert   *tls.Certificate
	ocsp   ocspState
}

// stamp tells whether a pair's files changed: a digest of their content. Size and
// modification time would miss a rewrite of the same size within the file system's timestamp
// granularity (a few milliseconds), and reading two small files per poll costs little.
type stamp struct {
	cert, key [sha256.Size]byte
}

// table is the immutable lookup a handshake reads.
type table struct {
	exact    map[string]*tls.Certificate // DNS names in lower case, and IP addresses
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate
}

// New loads every pair; any that does not load is an error, since a node should not start
// with a certificate missing. A nil reg exports no metrics.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if len(cfg.Pairs) == 0 {
		return nil, errors.New("certs: no certificate")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: log, m: newMetrics(), ocspClient: &http.Client{}}
	var errs []error
	for _, p := range cfg.Pairs {
		ps := pairState{Pair: p, ocsp: newOCSPState()}
		cert, st, err := load(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps.cert, ps.stamp = cert, st
		s.pairs = append(s.pairs, ps)
		s.m.expiry.WithLabelValues(p.CertFile).Set(float64(cert.Leaf.NotAfter.Unix()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := promreg.Register(reg, s.m.reloads, s.m.expiry, s.m.stapled, s.m.nextUpdate, s.m.ocspFailures); err != nil {
		return nil, fmt.Errorf("certs: register metrics: %w", err)
	}
	s.publish()
	return s, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := s.table.Load()
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if c := t.exact[name]; c != nil {
			return c, nil
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if c := t.wildcard[parent]; c != nil {
				return c, nil
			}
		}
	} else if hello.Conn != nil {
		// No SNI (a client that dialled an IP address): the certificate for that address.
		if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
			if c := t.exact[a.IP.String()]; c != nil {
				return c, nil
			}
		}
	}
	return t.def, nil
}

// Reload loads the pairs whose files changed since they were last loaded. A pair that fails
// keeps its previous certificate; the returned error names every such pair.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(true)
}

// reloadLocked reloads changed pairs, or every pair when all is set.
func (s *Store) reloadLocked(all bool) error {
	var errs []error
	changed := false
	for i := range s.pairs {
		ps := &s.pairs[i]
		certPEM, keyPEM, st, err := read(ps.Pair)
		if err == nil && !all && st == ps.stamp {
			continue
		}
		var cert *tls.Certificate
		if err == nil {
			cert, err = parse(ps.Pair, certPEM, keyPEM)
		}
		if err != nil {
			// A deploy writes the certificate and the key one after the other, so a poll can
			// see one new file with the other old: the same files failing again at the next
			// poll is a broken deploy, reported once; a reload asked for reports at once.
			if !all && st != ps.failed {
				ps.failed = st
				continue
			}
			s.m.reloads.WithLabelValues("failure").Inc()
			s.log.Error("certificate not reloaded; the previous one stays in use",
				"cert_file", ps.CertFile, "key_file", ps.KeyFile, "error", err.Error())
			errs = append(errs, err)
			ps.stamp = st // not again until the files change
			continue
		}
		if sameLeaf(cert, ps.cert) { // touched, or rewritten with the same content
			ps.stamp = st
			continue
		}
		ps.cert, ps.stamp, ps.ocsp, changed = cert, st, newOCSPState(), true
		s.m.setStaple(ps.CertFile, nil) // the new certificate's own check comes
		s.m.reloads.WithLabelValues("success").Inc()
		s.m.expiry.WithLabelValues(ps.CertFile).Set(float64(cert.Leaf.NotAfter.Unix()))
		s.log.Info("certificate reloaded", "cert_file", ps.CertFile, "names", strings.Join(cert.Leaf.DNSNames, ","),
			"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if changed {
		s.publish()
	}
	return errors.Join(errs...)
}

// Run checks the files every PollInterval until ctx ends, and staples OCSP answers to the
// certificates whose responders are due to be asked.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	s.staples(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.mu.Lock()
			_ = s.reloadLocked(false) // logged and counted there
			s.mu.Unlock()
			s.staples(ctx, time.Now())
		}
	}
}

// publish builds the lookup table from the pairs in order: the first pair that covers a name
// keeps it.
func (s *Store) publish() {
	t := &table{exact: make(map[string]*tls.Certificate), wildcard: make(map[string]*tls.Certificate)}
	for _, ps := range s.pairs {
		c := ps.cert
		if ps.ocsp.staple != nil {
			stapled := *c
			stapled.OCSPStaple = ps.ocsp.staple
			c = &stapled
		}
		if t.def == nil {
			t.def = c
		}
		names := c.Leaf.DNSNames
		if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
			names = []string{c.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(n)
			if parent, ok := strings.CutPrefix(n, "*."); ok {
				if t.wildcard[parent] == nil {
					t.wildcard[parent] = c
				}
				continue
			}
			if t.exact[n] == nil {
				t.exact[n] = c
			}
		}
		for _, ip := range c.Leaf.IPAddresses {
			if t.exact[ip.String()] == nil {
				t.exact[ip.String()] = c
			}
		}
	}
	s.table.Store(t)
}

// read reads a pair's files and stamps their content.
func read(p Pair) (certPEM, keyPEM []byte, st stamp, err error) {
	if certPEM, err = os.ReadFile(p.CertFile); err != nil {
		return nil, nil, st, fmt.Errorf("certificate %s: %w", p.CertFile, err)
	}
	if keyPEM, err = os.ReadFile(p.KeyFile); err != nil {
		return nil, nil, st, fmt.Errorf("certificate %s: %w", p.CertFile, err)
	}
	return certPEM, keyPEM, stamp{cert: sha256.Sum256(certPEM), key: sha256.Sum256(keyPEM)}, nil
}

// load reads a pair and checks that the certificate is one a client could accept now.
func load(p Pair) (*tls.Certificate, stamp, error) {
	certPEM, keyPEM, st, err := read(p)
	if err != nil {
		return nil, st, err
	}
	cert, err := parse(p, certPEM, keyPEM)
	return cert, st, err
}

// parse makes the certificate of p from its files' content and checks that a client could
// accept it now.
func parse(p Pair, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", p.CertFile, p.KeyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", p.CertFile, err)
		}
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", p.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

func sameLeaf(a, b *tls.Certificate) bool {
	return a != nil && b != nil && string(a.Certificate[0]) == string(b.Certificate[0])
}

type metrics struct {
	reloads *prometheus.CounterVec
	expiry  *prometheus.GaugeVec
	// Stapling, by certificate file, for the files whose certificate names a responder.
	stapled      *prometheus.GaugeVec
	nextUpdate   *prometheus.GaugeVec
	ocspFailures *prometheus.CounterVec
}

func newMetrics() metrics {
	m := metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_tls_certificate_reloads_total",
			Help: "Certificate files loaded again after they changed, by result (success, failure: the previous certificate stays).",
		}, []string{"result"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "veloflux_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the certificate in use from each certificate file expires.",
		}, []string{"cert_file"}),
	}
	m.stapled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "veloflux_tls_ocsp_stapled",
		Help: "1 while the certificate from each certificate file is served with an OCSP staple, else 0; only files whose certificate names a responder.",
	}, []string{"cert_file"})
	m.nextUpdate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "veloflux_tls_ocsp_next_update_timestamp_seconds",
		Help: "Unix time of the NextUpdate of the OCSP answer stapled to each certificate file's certificate, after which it is no longer stapled; 0 when none is stapled or the answer gives none.",
	}, []string{"cert_file"})
	m.ocspFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veloflux_tls_ocsp_failures_total",
		Help: "OCSP asks that brought no answer to staple, by certificate file and reason (unreachable, http_status, invalid_answer, revoked, unknown).",
	}, []string{"cert_file", "reason"})
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	return m
}
