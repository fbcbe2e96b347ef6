//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// writeNamedCert writes a self-signed certificate for names with the given serial, replacing
// the files atomically as a deploy tool would.
func writeNamedCert(t *testing.T, certFile, keyFile string, serial int64, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	} {
		if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial is the serial of the certificate the node shows a client asking for name.
func servedSerial(t *testing.T, addr, name string) int64 {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %q: %v", name, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLSCertificatesBySNIAndReload: several certificates chosen by SNI; a changed file is
// picked up without a restart, a broken one keeps the certificate in use, SIGHUP reloads.
func TestTLSCertificatesBySNIAndReload(t *testing.T) {
	be := newBackend(t, "app", 0)
	dir := t.TempDir()
	main := [2]string{filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")}
	wild := [2]string{filepath.Join(dir, "wild.crt"), filepath.Join(dir, "wild.key")}
	writeNamedCert(t, main[0], main[1], 1, "example.com", "www.example.com")
	writeNamedCert(t, wild[0], wild[1], 2, "*.example.org")
	cfg := singlePool(testconfig.WebPool(be.addr()))
	cfg.Global.TLSBindAddress = "127.0.0.1:0"
	cfg.Global.TLS = &testconfig.TLS{CertFile: main[0], KeyFile: main[1], Certificates: []testconfig.CertPair{{CertFile: wild[0], KeyFile: wild[1]}}}
	n := startNode(t, cfg.YAML(t))
	addr := n.tlsListener()
	for name, want := range map[string]int64{"www.example.com": 1, "shop.example.org": 2, "unknown.test": 1} {
		if got := servedSerial(t, addr, name); got != want {
			t.Fatalf("%s: serial %d, want %d", name, got, want)
		}
	}

	writeNamedCert(t, wild[0], wild[1], 3, "*.example.org")
	testutil.Eventually(t, "the changed certificate file to be served", func() bool {
		return servedSerial(t, addr, "shop.example.org") == 3
	})

	if err := os.WriteFile(main[0], []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.signal(syscall.SIGHUP)
	testutil.Eventually(t, "the broken file to be reported", func() bool {
		return len(n.logs.Find("certificate not reloaded; the previous one stays in use")) > 0
	})
	if got := servedSerial(t, addr, "www.example.com"); got != 1 {
		t.Fatalf("after a broken file: serial %d, want the previous certificate 1", got)
	}
	if m := metricLine(t, n, `veloflux_tls_certificate_reloads_total{result="failure"}`); m != "1" {
		t.Fatalf("failed reloads counted %q, want 1", m)
	}
	writeNamedCert(t, main[0], main[1], 4, "example.com", "www.example.com")
	n.signal(syscall.SIGHUP)
	testutil.Eventually(t, "the fixed certificate after SIGHUP", func() bool {
		return servedSerial(t, addr, "www.example.com") == 4
	})
	if !strings.Contains(metricLine(t, n, `veloflux_tls_certificate_expiry_timestamp_seconds{cert_file="`+main[0]+`"}`), "e+09") {
		t.Fatal("no expiry gauge for the certificate file")
	}
}

// TestTLSOldVersionsRefused: the TLS listener refuses clients limited to TLS 1.0 or 1.1 with
// a protocol_version alert, and serves TLS 1.2. openssl s_client, when installed, is refused
// too (the Go client is the test; openssl only adds a second implementation).
func TestTLSOldVersionsRefused(t *testing.T) {
	be := newBackend(t, "app", 0)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "main.crt"), filepath.Join(dir, "main.key")
	writeNamedCert(t, certFile, keyFile, 1, "example.com")
	cfg := singlePool(testconfig.WebPool(be.addr()))
	cfg.Global.TLSBindAddress = "127.0.0.1:0"
	cfg.Global.TLS = &testconfig.TLS{CertFile: certFile, KeyFile: keyFile}
	n := startNode(t, cfg.YAML(t))
	addr := n.tlsListener()

	dial := func(minV, maxV uint16) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
			ServerName: "example.com", InsecureSkipVerify: true, MinVersion: minV, MaxVersion: maxV,
		})
		if err != nil {
			return err
		}
		return c.Close()
	}
	for _, tt := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.0 to 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := dial(tt.min, tt.max)
			switch {
			case tt.ok && err != nil:
				t.Errorf("handshake: %v", err)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), "protocol version")):
				t.Errorf("handshake: %v, want it refused with a protocol_version alert", err)
			}
		})
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not installed; refused to the Go client only")
		return
	}
	// SECLEVEL=0: OpenSSL 3 itself refuses to offer TLS 1.1 at the default security level,
	// which would refuse the handshake before VeloFlux saw it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", "example.com", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "alert protocol version") {
		t.Errorf("openssl s_client -tls1_1: %v, want the server's protocol version alert:\n%s", err, out)
	}
}

// TestTLSOCSPStapling: a certificate file whose leaf names an OCSP responder (a real one on
// 127.0.0.1, signing as the CA) is served by a node with the responder's Good answer for its
// serial stapled.
func TestTLSOCSPStapling(t *testing.T) {
	r := testutil.NewOCSPResponder(t)
	certFile, keyFile, leaf := r.Issue(t, t.TempDir(), "example.com", ocsp.Good)

	be := newBackend(t, "app", 0)
	cfg := singlePool(testconfig.WebPool(be.addr()))
	cfg.Global.TLSBindAddress = "127.0.0.1:0"
	cfg.Global.TLS = &testconfig.TLS{CertFile: certFile, KeyFile: keyFile}
	n := startNode(t, cfg.YAML(t))
	roots := r.Roots()

	// The node asks the responder in the background after it starts.
	var staple []byte
	testutil.Eventually(t, "a stapled OCSP answer", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", n.tlsListener(), &tls.Config{ServerName: "example.com", RootCAs: roots})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		staple = c.ConnectionState().OCSPResponse
		return staple != nil
	})
	resp, err := ocsp.ParseResponseForCert(staple, leaf, r.CA)
	if err != nil {
		t.Fatalf("the staple is not the responder's answer about the certificate: %v", err)
	}
	if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("staple: status %d about serial %v, want Good about %v", resp.Status, resp.SerialNumber, leaf.SerialNumber)
	}
}
