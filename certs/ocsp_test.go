package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/veloflux/veloflux/internal/testutil"
)

// responder is a CA with a real OCSP responder on 127.0.0.1: it answers for the serials it
// issued with the status set for them, signing as the CA.
type responder struct {
	ca    *x509.Certificate
	key   crypto.Signer
	srv   *httptest.Server
	mu    sync.Mutex
	state map[string]int // serial -> ocsp.Good, ocsp.Revoked
	asked map[string]int // serial -> requests answered
}

func newResponder(t *testing.T) *responder {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "VeloFlux test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{ca: ca, key: key, state: map[string]int{}, asked: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.answer))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *responder) answer(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	status, ok := r.state[q.SerialNumber.String()]
	r.asked[q.SerialNumber.String()]++
	r.mu.Unlock()
	if !ok {
		_, _ = w.Write(ocsp.UnauthorizedErrorResponse)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{Status: status, SerialNumber: q.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	if status == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Minute), ocsp.KeyCompromise
	}
	resp, err := ocsp.CreateResponse(r.ca, r.ca, tmpl, r.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

func (r *responder) askedFor(serial *big.Int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[serial.String()]
}

// issue writes a certificate for name naming the responder, with the CA after it in the file,
// and sets the status the responder gives it.
func (r *responder) issue(t *testing.T, dir, name string, status int) (Pair, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1) + 1000), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer: []string{r.srv.URL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.ca, &key.PublicKey, r.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.ca.Raw})...)
	writeFile(t, p.CertFile, chain)
	writeFile(t, p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	r.mu.Lock()
	r.state[leaf.SerialNumber.String()] = status
	r.mu.Unlock()
	return p, leaf
}

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
// staple, and the revocation is logged.
func TestOCSPStapling(t *testing.T) {
	r := newResponder(t)
	dir := t.TempDir()
	goodPair, good := r.issue(t, dir, "good.example.com", ocsp.Good)
	revokedPair, revoked := r.issue(t, dir, "revoked.example.com", ocsp.Revoked)
	plainPair, _ := writePair(t, dir, "plain", "plain.example.com") // no responder, no issuer

	logs := &testutil.LogBuffer{}
	st, err := New(Config{Pairs: []Pair{goodPair, revokedPair, plainPair}}, logs.Logger(), nil)
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
	roots := x509.NewCertPool()
	roots.AddCert(r.ca)
	addr := ln.Addr().String()

	// Stapling runs in the background, so a handshake before the answer came has no staple.
	var staple []byte
	testutil.Eventually(t, "a stapled OCSP answer for good.example.com", func() bool {
		staple = stapled(t, addr, "good.example.com", roots)
		return staple != nil
	})
	resp, err := ocsp.ParseResponseForCert(staple, good, r.ca)
	if err != nil {
		t.Fatalf("the staple is not the responder's answer for the certificate: %v", err)
	}
	if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(good.SerialNumber) != 0 {
		t.Errorf("staple: status %d for serial %v, want Good (%d) for %v", resp.Status, resp.SerialNumber, ocsp.Good, good.SerialNumber)
	}

	testutil.Eventually(t, "the revocation logged", func() bool {
		return len(logs.Find("OCSP: the responder does not say Good; serving the certificate without a staple")) > 0
	})
	if got := stapled(t, addr, "revoked.example.com", roots); got != nil {
		t.Errorf("a revoked certificate was served with a staple (%d bytes)", len(got))
	}
	if r.askedFor(revoked.SerialNumber) == 0 {
		t.Error("the responder was never asked about the revoked certificate")
	}
	if got := stapled(t, addr, "plain.example.com", nil); got != nil {
		t.Errorf("a certificate without a responder was served with a staple")
	}
}
