package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponder is a CA with a real OCSP responder on 127.0.0.1: it answers for the serials it
// issued with the status set for them, signing as the CA, and refuses the others.
type OCSPResponder struct {
	CA     *x509.Certificate
	key    *ecdsa.PrivateKey
	srv    *httptest.Server
	serial atomic.Int64
	mu     sync.Mutex
	state  map[string]int // serial -> ocsp.Good, ocsp.Revoked
	asked  map[string]int // serial -> requests answered
}

// NewOCSPResponder starts a responder for a new CA; the test's cleanup stops it.
func NewOCSPResponder(t testing.TB) *OCSPResponder {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "VeloFlux OCSP test CA"},
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
	r := &OCSPResponder{CA: ca, key: key, state: map[string]int{}, asked: map[string]int{}}
	r.serial.Store(1000)
	r.srv = httptest.NewServer(http.HandlerFunc(r.answer))
	t.Cleanup(r.srv.Close)
	return r
}

// Roots is a pool holding the responder's CA.
func (r *OCSPResponder) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.CA)
	return p
}

func (r *OCSPResponder) answer(w http.ResponseWriter, req *http.Request) {
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
	resp, err := ocsp.CreateResponse(r.CA, r.CA, tmpl, r.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

// AskedFor is how many requests about serial the responder answered.
func (r *OCSPResponder) AskedFor(serial *big.Int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[serial.String()]
}

// Issue writes name.crt (a certificate for name that names the responder, the CA after it) and
// name.key under dir, and sets the status (ocsp.Good, ocsp.Revoked) the responder gives it.
func (r *OCSPResponder) Issue(t testing.TB, dir, name string, status int) (certFile, keyFile string, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(r.serial.Add(1)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer: []string{r.srv.URL},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.CA, &key.PublicKey, r.key)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.CA.Raw})...)
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.state[leaf.SerialNumber.String()] = status
	r.mu.Unlock()
	return certFile, keyFile, leaf
}
