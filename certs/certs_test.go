package certs

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
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var serial atomic.Int64

// writePair writes a self-signed certificate for names (IP addresses among them become IP
// SANs) and its key into dir under base, and returns the pair and the certificate's serial.
func writePair(t *testing.T, dir, base string, names ...string) (Pair, int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := serial.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(n),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, name)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writeFile(t, p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return p, n
}

// writeFile replaces path atomically, the way deploy tools do.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func serialOf(t *testing.T, c *tls.Certificate) int64 {
	t.Helper()
	return c.Leaf.SerialNumber.Int64()
}

type addrConn struct {
	net.Conn
	local net.Addr
}

func (c addrConn) LocalAddr() net.Addr { return c.local }

func TestSelection(t *testing.T) {
	dir := t.TempDir()
	first, s1 := writePair(t, dir, "first", "example.com", "www.example.com")
	wild, s2 := writePair(t, dir, "wild", "*.example.com")
	other, s3 := writePair(t, dir, "other", "api.example.com", "10.0.0.5")
	dup, _ := writePair(t, dir, "dup", "example.com") // covered by first already
	st, err := New(Config{Pairs: []Pair{first, wild, other, dup}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		hello *tls.ClientHelloInfo
		want  int64
	}{
		{"exact", &tls.ClientHelloInfo{ServerName: "www.example.com"}, s1},
		{"exact, any case, trailing dot", &tls.ClientHelloInfo{ServerName: "WWW.Example.COM."}, s1},
		{"exact beats wildcard", &tls.ClientHelloInfo{ServerName: "api.example.com"}, s3},
		{"wildcard one label up", &tls.ClientHelloInfo{ServerName: "shop.example.com"}, s2},
		{"wildcard covers one label only", &tls.ClientHelloInfo{ServerName: "a.b.example.com"}, s1},
		{"the first pair listed wins a name", &tls.ClientHelloInfo{ServerName: "example.com"}, s1},
		{"unknown name gets the default", &tls.ClientHelloInfo{ServerName: "elsewhere.test"}, s1},
		{"no SNI: the certificate of the address dialled", &tls.ClientHelloInfo{Conn: addrConn{local: &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 443}}}, s3},
		{"no SNI, other address: the default", &tls.ClientHelloInfo{Conn: addrConn{local: &net.TCPAddr{IP: net.ParseIP("10.0.0.6"), Port: 443}}}, s1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := st.GetCertificate(tt.hello)
			if err != nil {
				t.Fatal(err)
			}
			if got := serialOf(t, c); got != tt.want {
				t.Fatalf("serial %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNewRefusesWhatDoesNotLoad(t *testing.T) {
	dir := t.TempDir()
	good, _ := writePair(t, dir, "good", "example.com")
	other, _ := writePair(t, dir, "other", "example.org")
	writeFile(t, filepath.Join(dir, "garbage.crt"), []byte("not PEM"))
	for name, pairs := range map[string][]Pair{
		"none":           nil,
		"missing file":   {good, {CertFile: filepath.Join(dir, "nope.crt"), KeyFile: good.KeyFile}},
		"garbage":        {{CertFile: filepath.Join(dir, "garbage.crt"), KeyFile: good.KeyFile}},
		"key of another": {{CertFile: good.CertFile, KeyFile: other.KeyFile}},
	} {
		if _, err := New(Config{Pairs: pairs}, nil, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// A changed file is picked up by the poll; a broken one keeps the certificate in use, is
// counted once, and a fixed one is picked up again.
//
// The store counts a pair that fails at two polls in a row with the same files as broken,
// while one that fails once may be a deploy caught between writing the certificate and the
// key. The test writes each pair in two steps like such a deploy, so on the wall clock a
// busy machine could let two polls fall between its writes and count a failure that is not
// there. It runs in a synctest bubble: the clock moves only while the test waits, so polls
// see each pair whole, and the broken file the test leaves alone sees poll after poll.
func TestReloadOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p, s1 := writePair(t, dir, "site", "example.com")
		reg := prometheus.NewRegistry()
		st, err := New(Config{Pairs: []Pair{p}, PollInterval: 10 * time.Millisecond}, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { defer close(done); _ = st.Run(ctx) }()
		defer func() { cancel(); <-done }()
		hello := &tls.ClientHelloInfo{ServerName: "example.com"}
		current := func() int64 { c, _ := st.GetCertificate(hello); return serialOf(t, c) }
		failures := func() float64 { return promtest.ToFloat64(st.m.reloads.WithLabelValues("failure")) }
		if current() != s1 {
			t.Fatal("not serving the first certificate")
		}

		_, s2 := writePair(t, dir, "site", "example.com")
		testutil.Eventually(t, "the new certificate", func() bool { return current() == s2 })

		writeFile(t, p.CertFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
		testutil.Eventually(t, "the broken file to be counted", func() bool { return failures() == 1 })
		// Many more polls of the same broken files.
		time.Sleep(100 * st.cfg.PollInterval)
		if n := failures(); n != 1 {
			t.Fatalf("failures counted %v after 100 more polls, want 1 (once per broken file, not per poll)", n)
		}
		if current() != s2 {
			t.Fatal("a broken file replaced the certificate in use")
		}
		_, s3 := writePair(t, dir, "site", "example.com")
		testutil.Eventually(t, "the fixed certificate", func() bool { return current() == s3 })
		if n := failures(); n != 1 {
			t.Fatalf("failures counted %v, want 1", n)
		}
		if n := promtest.ToFloat64(st.m.reloads.WithLabelValues("success")); n != 2 {
			t.Fatalf("reloads counted %v, want 2", n)
		}
	})
}

// A deploy caught half written by one poll is not a failure: the poll after it sees both new
// files. One that stays half written for two polls is reported, once.
func TestReloadHalfWrittenPair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p, _ := writePair(t, dir, "site", "example.com")
		st, err := New(Config{Pairs: []Pair{p}, PollInterval: 10 * time.Millisecond}, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { defer close(done); _ = st.Run(ctx) }()
		defer func() { cancel(); <-done }()
		hello := &tls.ClientHelloInfo{ServerName: "example.com"}
		current := func() int64 { c, _ := st.GetCertificate(hello); return serialOf(t, c) }
		failures := func() float64 { return promtest.ToFloat64(st.m.reloads.WithLabelValues("failure")) }

		next, s2 := writePair(t, t.TempDir(), "next", "example.com")
		copyFile(t, next.CertFile, p.CertFile) // the new certificate with the old key
		time.Sleep(st.cfg.PollInterval)        // one poll sees it
		synctest.Wait()
		copyFile(t, next.KeyFile, p.KeyFile)
		testutil.Eventually(t, "the new pair", func() bool { return current() == s2 })
		if n := failures(); n != 0 {
			t.Fatalf("failures counted %v for a pair one poll saw half written, want 0", n)
		}

		third, s3 := writePair(t, t.TempDir(), "third", "example.com")
		copyFile(t, third.CertFile, p.CertFile)
		time.Sleep(2 * st.cfg.PollInterval) // two polls see it
		synctest.Wait()
		if n := failures(); n != 1 {
			t.Fatalf("failures counted %v for a pair two polls saw half written, want 1", n)
		}
		copyFile(t, third.KeyFile, p.KeyFile)
		testutil.Eventually(t, "the third pair", func() bool { return current() == s3 })
		if n := failures(); n != 1 {
			t.Fatalf("failures counted %v, want still 1", n)
		}
	})
}

// copyFile replaces dst with src's content, as writeFile does.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b)
}

// Reload (SIGHUP) reports a broken pair and keeps its certificate.
func TestReloadReportsBrokenPair(t *testing.T) {
	dir := t.TempDir()
	p, s1 := writePair(t, dir, "site", "example.com")
	st, err := New(Config{Pairs: []Pair{p}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p.KeyFile, []byte("nope"))
	if err := st.Reload(); err == nil || !strings.Contains(err.Error(), p.CertFile) {
		t.Fatalf("Reload: %v, want an error naming %s", err, p.CertFile)
	}
	c, _ := st.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.com"})
	if serialOf(t, c) != s1 {
		t.Fatal("the broken pair's certificate was replaced")
	}
}

// A connection made before a reload goes on after it; new handshakes get the new certificate.
func TestReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	p, s1 := writePair(t, dir, "site", "127.0.0.1")
	st, err := New(Config{Pairs: []Pair{p}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: st.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	dial := func() (*tls.Conn, int64) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c, c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	echo := func(c *tls.Conn) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q %v", buf, err)
		}
	}
	old, got := dial()
	defer old.Close()
	if got != s1 {
		t.Fatalf("served serial %d, want %d", got, s1)
	}
	echo(old)
	_, s2 := writePair(t, dir, "site", "127.0.0.1")
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	echo(old)
	fresh, got := dial()
	defer fresh.Close()
	if got != s2 {
		t.Fatalf("new handshake got serial %d, want %d", got, s2)
	}
	ln.Close()
	old.Close()
	fresh.Close()
	<-served
}
