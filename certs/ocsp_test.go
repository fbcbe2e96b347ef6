package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/veloflux/veloflux/internal/testutil"
)

// stapled connects to a TLS server on addr asking for name and returns the staple it got. With
// nil roots the certificate is not verified.
func stapled(t *testing.T, addr, name string, roots *x509.CertPool) []byte {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: roots == nil})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer c.Close()
	return c.ConnectionState().OCSPResponse
}

// TestOCSPStapling: a certificate file whose leaf names an OCSP responder is served with the
// responder's Good answer for its serial; one the responder calls revoked is served without a
// staple, and the revocation is logged and counted; the metrics say which file is stapled
// and until when.
func TestOCSPStapling(t *testing.T) {
	r := testutil.NewOCSPResponder(t)
	dir := t.TempDir()
	goodCert, goodKey, good := r.Issue(t, dir, "good.example.com", ocsp.Good)
	revokedCert, revokedKey, revoked := r.Issue(t, dir, "revoked.example.com", ocsp.Revoked)
	goodPair, revokedPair := Pair{CertFile: goodCert, KeyFile: goodKey}, Pair{CertFile: revokedCert, KeyFile: revokedKey}
	plainPair, _ := writePair(t, dir, "plain", "plain.example.com") // no responder, no issuer

	logs := &testutil.LogBuffer{}
	reg := prometheus.NewRegistry()
	st, err := New(Config{Pairs: []Pair{goodPair, revokedPair, plainPair}}, logs.Logger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: st.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = ln.Close()
		wg.Wait()
	})
	roots := r.Roots()
	addr := ln.Addr().String()

	// Stapling runs in the background, so a handshake before the answer came has no staple.
	var staple []byte
	testutil.Eventually(t, "a stapled OCSP answer for good.example.com", func() bool {
		staple = stapled(t, addr, "good.example.com", roots)
		return staple != nil
	})
	resp, err := ocsp.ParseResponseForCert(staple, good, r.CA)
	if err != nil {
		t.Fatalf("the staple is not the responder's answer for the certificate: %v", err)
	}
	if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(good.SerialNumber) != 0 {
		t.Errorf("staple: status %d for serial %v, want Good (%d) for %v", resp.Status, resp.SerialNumber, ocsp.Good, good.SerialNumber)
	}

	if got := gaugeOf(t, reg, "veloflux_tls_ocsp_stapled", goodCert, ""); got != 1 {
		t.Errorf("veloflux_tls_ocsp_stapled for the good certificate = %v, want 1", got)
	}
	if got, want := gaugeOf(t, reg, "veloflux_tls_ocsp_next_update_timestamp_seconds", goodCert, ""), float64(resp.NextUpdate.Unix()); resp.NextUpdate.IsZero() || got != want {
		t.Errorf("veloflux_tls_ocsp_next_update_timestamp_seconds = %v, want the staple's NextUpdate %v", got, want)
	}

	testutil.Eventually(t, "the revocation logged", func() bool {
		return len(logs.Find("OCSP: the responder does not say Good; serving the certificate without a staple")) > 0
	})
	if got := gaugeOf(t, reg, "veloflux_tls_ocsp_failures_total", revokedCert, "revoked"); got < 1 {
		t.Errorf("veloflux_tls_ocsp_failures_total{reason=\"revoked\"} = %v, want at least 1", got)
	}
	if got := gaugeOf(t, reg, "veloflux_tls_ocsp_stapled", revokedCert, ""); got != 0 {
		t.Errorf("veloflux_tls_ocsp_stapled for the revoked certificate = %v, want 0", got)
	}
	if got := gaugeOf(t, reg, "veloflux_tls_ocsp_failures_total", goodCert, ""); got > 0 {
		t.Errorf("veloflux_tls_ocsp_failures_total for the good certificate = %v, want none", got)
	}
	if got := stapled(t, addr, "revoked.example.com", roots); got != nil {
		t.Errorf("a revoked certificate was served with a staple (%d bytes)", len(got))
	}
	if r.AskedFor(revoked.SerialNumber) == 0 {
		t.Error("the responder was never asked about the revoked certificate")
	}
	if got := stapled(t, addr, "plain.example.com", nil); got != nil {
		t.Errorf("a certificate without a responder was served with a staple")
	}
}

// gaugeOf sums the values of name's series for certFile (and reason, unless ""); -1 when there
// is none.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name, certFile, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cert_file" && l.GetValue() != certFile || l.GetName() == "reason" && reason != "" && l.GetValue() != reason {
					continue series
				}
			}
			found = true
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if !found {
		return -1
	}
	return sum
}
