// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for VeloFlux's ACME tests:
// a Pebble on loopback with pebble-challtestsrv as its DNS server, which answers every name
// with 127.0.0.1 unless a test points a name elsewhere (SetA), so that challenges reach the
// VeloFlux nodes under test.
//
// The binaries are built from the Go module proxy by `make pebble` into
// $HOME/.cache/veloflux/pebble-2.10.3 (VELOFLUX_PEBBLE_DIR overrides the folder). Without them a
// test skips with that hint, except in CI (CI=true), where it fails: CI must run these tests.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// Version is the Pebble release the project builds and tests against.
const Version = "2.10.3"

// Dir returns the folder holding pebble and pebble-challtestsrv, or ends the test when they
// are missing.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VELOFLUX_PEBBLE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err == nil {
			dir = filepath.Join(home, ".cache", "veloflux", "pebble-"+Version)
		}
	}
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing in CI: `make pebble` must build it before the tests", filepath.Join(dir, bin))
			}
			t.Skipf("%s not found: run `make pebble` (builds Pebble %s once)", filepath.Join(dir, bin), Version)
		}
	}
	return dir
}

// Options shape one Pebble.
type Options struct {
	// HTTPPort and TLSPort are where Pebble sends HTTP-01 and TLS-ALPN-01 validation requests,
	// on the address the name resolves to. Required.
	HTTPPort, TLSPort int
	// Validity is the lifetime of the certificates Pebble issues. Default 90 days.
	Validity time.Duration
	// OCSPResponderURL is named as the OCSP responder in the certificates Pebble issues, which
	// runs none itself. Default "" = none named.
	OCSPResponderURL string
	// KeyAlgorithm is Pebble's for its CA keys: "ecdsa" (default) or "rsa", which a test
	// needs to get the intermediate's key (Intermediate) from Pebble's management API.
	KeyAlgorithm string
}

// Server is a running Pebble with its DNS server.
type Server struct {
	// Directory is the ACME directory URL.
	Directory string
	// CARootFile is a PEM file with the CA that signed Pebble's own HTTPS certificate: what
	// global.tls.acme_ca_root names.
	CARootFile string
	// Log collects both programs' output.
	Log *testutil.LogBuffer

	t        testing.TB
	mgmt     string // Pebble's management API, host:port
	chall    string // pebble-challtestsrv's management API, host:port
	apiTrust *x509.CertPool
}

// Start runs pebble-challtestsrv and Pebble on free loopback ports and waits until both
// answer. They are stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := Dir(t)
	if opts.HTTPPort == 0 || opts.TLSPort == 0 {
		t.Fatal("pebbletest: HTTPPort and TLSPort are required")
	}
	if opts.Validity == 0 {
		opts.Validity = 90 * 24 * time.Hour
	}
	if opts.KeyAlgorithm == "" {
		opts.KeyAlgorithm = "ecdsa"
	}
	work := t.TempDir()
	s := &Server{t: t}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble-challtestsrv and Pebble said:\n%s", s.Log.String())
		}
	})
	// The ports are free when picked but released before the programs bind them, so another
	// process (a Consul agent of a test running beside this one, say) can take one first. Pebble
	// then exits, and pebble-challtestsrv runs on without its DNS server, so that every
	// validation fails; either way both start again on other ports.
	const tries = 5
	for try := 1; ; try++ {
		if s.start(dir, work, opts) {
			return s
		}
		if try == tries || !strings.Contains(s.Log.String(), "address already in use") {
			t.Fatalf("pebbletest: pebble-challtestsrv or Pebble did not start (try %d of %d)", try, tries)
		}
		t.Logf("pebbletest: a port was taken before its program bound it; starting again on others (try %d)", try)
	}
}

// start runs pebble-challtestsrv and Pebble on ports picked now, and reports whether both
// answer with every server bound; on false both are stopped, and s.Log holds what they said.
func (s *Server) start(dir, work string, opts Options) bool {
	t := s.t
	t.Helper()
	s.Log = &testutil.LogBuffer{}
	ports := testutil.FreePorts(t, 4)
	dnsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	s.chall = "127.0.0.1:" + strconv.Itoa(ports[1])
	listen := "127.0.0.1:" + strconv.Itoa(ports[2])
	s.mgmt = "127.0.0.1:" + strconv.Itoa(ports[3])
	s.Directory = "https://" + listen + "/dir"

	caPEM, certPEM, keyPEM := selfCA(t)
	s.CARootFile = filepath.Join(work, "pebble-ca.pem")
	write(t, s.CARootFile, caPEM)
	write(t, filepath.Join(work, "cert.pem"), certPEM)
	write(t, filepath.Join(work, "key.pem"), keyPEM)
	s.apiTrust = x509.NewCertPool()
	s.apiTrust.AppendCertsFromPEM(caPEM)

	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": s.mgmt,
		"certificate":             filepath.Join(work, "cert.pem"),
		"privateKey":              filepath.Join(work, "key.pem"),
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"ocspResponderURL":        opts.OCSPResponderURL,
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            opts.KeyAlgorithm,
		"profiles": map[string]any{"default": map[string]any{
			"description": "the only profile", "validityPeriod": int64(opts.Validity / time.Second),
		}},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(work, "pebble-config.json"), b)

	chall, challDone := s.run(filepath.Join(dir, "pebble-challtestsrv"), nil,
		"-dnsserver", dnsAddr, "-management", s.chall, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	pebble, pebbleDone := s.run(filepath.Join(dir, "pebble"), []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once instead of after up to 15 s
		"PEBBLE_WFE_NONCEREJECT=0", // no random bad-nonce errors: orders are counted
		"PEBBLE_AUTHZREUSE=0",      // every order proves control again, as renewals must
	}, "-config", filepath.Join(work, "pebble-config.json"), "-dnsserver", dnsAddr)

	// A program's exit ends the wait at once, even a request in flight to a port that some
	// other process holds and never answers on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan struct{})
	go func() {
		select {
		case <-challDone:
		case <-pebbleDone:
		case <-ctx.Done():
			return
		}
		close(exited)
		cancel()
	}()
	up := true
	testutil.EventuallyWithNote(t, "Pebble and pebble-challtestsrv answer", func() (bool, string) {
		select {
		case <-exited:
			up = false
			return true, ""
		default:
		}
		if strings.Contains(s.Log.String(), "address already in use") {
			up = false
			return true, ""
		}
		// Pebble first proves itself with a handshake under its own certificate; only then is
		// the directory asked for, since an HTTP client's dial outlives a cancelled request.
		hs, err := (&tls.Dialer{Config: &tls.Config{RootCAs: s.apiTrust}}).DialContext(ctx, "tcp", listen)
		if err != nil {
			return false, err.Error()
		}
		hs.Close()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.chall)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Directory, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.APIClient().Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	// pebble-challtestsrv says whether its DNS server bound before it starts its management
	// server, which answered.
	if up && !strings.Contains(s.Log.String(), "address already in use") {
		return true
	}
	for _, p := range []struct {
		cmd  *exec.Cmd
		done <-chan struct{}
	}{{chall, challDone}, {pebble, pebbleDone}} {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return false
}

// run starts one program, stopped when the test ends; the channel is closed when it exits.
func (s *Server) run(bin string, env []string, args ...string) (*exec.Cmd, <-chan struct{}) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(testutil.Timeout()):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done
}

// APIClient trusts Pebble's HTTPS certificate.
func (s *Server) APIClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.apiTrust}}, Timeout: testutil.Timeout()}
}

// Roots returns the roots Pebble issues under, which verify the certificates it issued. Pebble
// makes a new root every time it starts.
func (s *Server) Roots() *x509.CertPool {
	s.t.Helper()
	resp, err := s.APIClient().Get("https://" + s.mgmt + "/roots/0")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("Pebble roots: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		s.t.Fatalf("Pebble roots: no PEM certificate in %q", b)
	}
	return pool
}

// Intermediate returns the certificate and key of the intermediate that signs the certificates
// Pebble issues, as an OCSP responder for them needs. Pebble serves the key only with
// Options.KeyAlgorithm "rsa".
func (s *Server) Intermediate() (*x509.Certificate, *rsa.PrivateKey) {
	s.t.Helper()
	get := func(path, want string) []byte {
		resp, err := s.APIClient().Get("https://" + s.mgmt + path)
		if err != nil {
			s.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			s.t.Fatalf("Pebble %s: %d %v", path, resp.StatusCode, err)
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != want {
			s.t.Fatalf("Pebble %s: no %s in %q", path, want, b)
		}
		return block.Bytes
	}
	cert, err := x509.ParseCertificate(get("/intermediates/0", "CERTIFICATE"))
	if err != nil {
		s.t.Fatal(err)
	}
	key, err := x509.ParsePKCS1PrivateKey(get("/intermediate-keys/0", "RSA PRIVATE KEY"))
	if err != nil {
		s.t.Fatal(err)
	}
	return cert, key
}

// Orders is how many orders Pebble has accepted (its "Added order" log lines).
func (s *Server) Orders() int { return s.Log.Count("Added order") }

// Issued is how many certificates Pebble has issued.
func (s *Server) Issued() int { return s.Log.Count("Issued certificate serial") }

// SetA makes the DNS server answer host with addr alone instead of 127.0.0.1.
func (s *Server) SetA(host, addr string) {
	s.t.Helper()
	// add-a adds to the addresses a host has; clear-a first, so that addr is the only one.
	s.challtestsrv("clear-a", map[string]any{"host": host})
	s.challtestsrv("add-a", map[string]any{"host": host, "addresses": []string{addr}})
}

func (s *Server) challtestsrv(op string, req map[string]any) {
	s.t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post("http://"+s.chall+"/"+op, "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pebble-challtestsrv %s %v: %s", op, req, resp.Status)
	}
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfCA makes a CA and a certificate for 127.0.0.1 and localhost signed by it, for Pebble's
// own HTTPS listener.
func selfCA(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// String names the server in test messages.
func (s *Server) String() string { return fmt.Sprintf("pebble at %s", s.Directory) }
