package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Stapling: a certificate whose leaf names an OCSP responder, and whose file carries the
// issuer's certificate after the leaf, is served with the responder's latest Good answer. The
// answer is asked for when the certificate is loaded, again halfway through its validity (as
// certmagic does for ACME certificates), and every minute after a failure; an answer past its
// NextUpdate is no longer stapled. A Revoked or Unknown answer is never stapled: the
// certificate is still served, without a staple, and the answer is logged as an error.

const (
	// ocspRetry is how long after a failed or unusable answer the responder is asked again.
	ocspRetry = time.Minute
	// ocspNoNextUpdate is when an answer without NextUpdate ("newer information is always
	// available") is refreshed.
	ocspNoNextUpdate = time.Hour
	// ocspMaxResponse bounds a responder's answer; real ones are a few kilobytes.
	ocspMaxResponse = 1 << 20
)

// ocspState is the stapling of one pair's certificate.
type ocspState struct {
	staple     []byte    // the Good answer served, nil for none
	nextUpdate time.Time // of the stapled answer; zero for none given
	due        time.Time // when to ask the responder; zero = at the next check
	status     int       // of the last answer, ocsp.Good etc.; -1 before any
	failing    bool      // the last ask failed: the next failure is not logged again
}

// ocspTarget is a certificate to ask about, taken from a pair under the lock and asked about
// without it.
type ocspTarget struct {
	index        int
	cert         *tls.Certificate
	leaf, issuer *x509.Certificate
	url          string
}

// never is a due time for a certificate that cannot be stapled, until its file changes.
var never = time.Unix(1<<62, 0)

func newOCSPState() ocspState { return ocspState{status: -1} }

// staples asks the responders of the certificates that are due, and publishes the staples
// that changed. now is the time of the check.
func (s *Store) staples(ctx context.Context, now time.Time) {
	s.mu.Lock()
	var due []ocspTarget
	changed := false
	for i := range s.pairs {
		ps := &s.pairs[i]
		if ps.ocsp.staple != nil && !ps.ocsp.nextUpdate.IsZero() && now.After(ps.ocsp.nextUpdate) {
			// A stale answer would tell a client nothing it could trust.
			ps.ocsp.staple, changed = nil, true
			s.m.setStaple(ps.CertFile, nil)
			s.log.Warn("OCSP staple expired and not refreshed; serving without one", "cert_file", ps.CertFile)
		}
		if !ps.ocsp.due.IsZero() && now.Before(ps.ocsp.due) {
			continue
		}
		c := ps.cert
		if len(c.Leaf.OCSPServer) == 0 || len(c.Certificate) < 2 {
			ps.ocsp.due = never
			continue
		}
		issuer, err := x509.ParseCertificate(c.Certificate[1])
		if err != nil {
			ps.ocsp.due = never
			s.log.Warn("OCSP: the certificate after the leaf does not parse; no stapling", "cert_file", ps.CertFile, "error", err.Error())
			continue
		}
		due = append(due, ocspTarget{index: i, cert: c, leaf: c.Leaf, issuer: issuer, url: c.Leaf.OCSPServer[0]})
	}
	if changed {
		s.publish()
	}
	s.mu.Unlock()

	for _, d := range due {
		raw, resp, err := s.askOCSP(ctx, d)
		s.mu.Lock()
		ps := &s.pairs[d.index]
		if ps.cert != d.cert { // reloaded meanwhile: its own check comes
			s.mu.Unlock()
			continue
		}
		st := &ps.ocsp
		switch {
		case err != nil:
			reason := "invalid_answer"
			var f *ocspFailure
			if errors.As(err, &f) {
				reason = f.reason
			}
			s.m.ocspFailures.WithLabelValues(ps.CertFile, reason).Inc()
			st.due = time.Now().Add(ocspRetry)
			if !st.failing {
				s.log.Warn("OCSP: no answer to staple; retrying every minute", "cert_file", ps.CertFile, "responder", d.url, "error", err.Error())
			}
			st.failing = true
		case resp.Status != ocsp.Good:
			s.m.ocspFailures.WithLabelValues(ps.CertFile, ocspStatus(resp)).Inc()
			s.m.setStaple(ps.CertFile, nil)
			st.due, st.failing = time.Now().Add(ocspRetry), false
			if st.status != resp.Status {
				s.log.Error("OCSP: the responder does not say Good; serving the certificate without a staple",
					"cert_file", ps.CertFile, "responder", d.url, "status", ocspStatus(resp), "revoked_at", resp.RevokedAt)
			}
			st.status = resp.Status
			if st.staple != nil {
				st.staple = nil
				s.publish()
			}
		default:
			st.status, st.staple, st.nextUpdate, st.failing = resp.Status, raw, resp.NextUpdate, false
			if resp.NextUpdate.IsZero() {
				st.due = time.Now().Add(ocspNoNextUpdate)
			} else {
				st.due = resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
			}
			s.m.setStaple(ps.CertFile, resp)
			s.log.Info("OCSP staple updated", "cert_file", ps.CertFile, "next_update", resp.NextUpdate.UTC().Format(time.RFC3339))
			s.publish()
		}
		s.mu.Unlock()
	}
}

// askOCSP asks d's responder about its leaf and checks the answer: signed by the issuer (or a
// responder it delegated to), about this serial, and not valid beyond the certificate.
func (s *Store) askOCSP(ctx context.Context, d ocspTarget) ([]byte, *ocsp.Response, error) {
	req, err := ocsp.CreateRequest(d.leaf, d.issuer, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(req))
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP responder %q: %w", d.url, err)
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	res, err := s.ocspClient.Do(hr)
	if err != nil {
		return nil, nil, &ocspFailure{"unreachable", err}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, &ocspFailure{"http_status", fmt.Errorf("OCSP responder answered %s", res.Status)}
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, ocspMaxResponse))
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP answer: %w", err)
	}
	resp, err := ocsp.ParseResponseForCert(raw, d.leaf, d.issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("OCSP answer: %w", err)
	}
	// A delegated responder must be one the issuer made for answering OCSP (RFC 6960 4.2.2.2);
	// ParseResponseForCert checks only that the issuer signed it.
	if r := resp.Certificate; r != nil && !slices.Contains(r.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return nil, nil, errors.New("OCSP answer signed by a certificate without the OCSP signing usage")
	}
	if !resp.NextUpdate.IsZero() && resp.NextUpdate.After(d.leaf.NotAfter) {
		return nil, nil, errors.New("OCSP answer valid beyond the certificate's expiry")
	}
	return raw, resp, nil
}

// ocspFailure is a failed ask with the reason label of veloflux_tls_ocsp_failures_total;
// any other error of askOCSP is an answer that does not hold (invalid_answer).
type ocspFailure struct {
	reason string
	err    error
}

func (f *ocspFailure) Error() string { return f.err.Error() }
func (f *ocspFailure) Unwrap() error { return f.err }

func ocspStatus(r *ocsp.Response) string {
	switch r.Status {
	case ocsp.Good:
		return "good"
	case ocsp.Revoked:
		return "revoked"
	default:
		return "unknown"
	}
}

// setStaple records the answer stapled to certFile's certificate; nil for none.
func (m metrics) setStaple(certFile string, resp *ocsp.Response) {
	if resp == nil {
		m.stapled.WithLabelValues(certFile).Set(0)
		m.nextUpdate.WithLabelValues(certFile).Set(0)
		return
	}
	m.stapled.WithLabelValues(certFile).Set(1)
	next := 0.0
	if !resp.NextUpdate.IsZero() {
		next = float64(resp.NextUpdate.Unix())
	}
	m.nextUpdate.WithLabelValues(certFile).Set(next)
}
