// Package backendtls builds the client TLS configuration VeloFlux uses towards https backends
// from a pool's tls settings (pools[].tls): a private CA, a server name, a client certificate
// for mutual TLS. The proxy and the health checks both build theirs here, so a probe verifies
// and presents exactly what a proxied request does.
package backendtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Settings is the client side of TLS towards a pool's backends. It is comparable, so that
// users keep one transport per distinct Settings. The zero value verifies the backend's
// certificate against the system roots, for the host of its address.
type Settings struct {
	// CAFile is PEM CA certificates that verify backends instead of the system roots.
	CAFile string
	// ServerName is sent as SNI and checked in the certificate instead of the address's host.
	ServerName string
	// CertFile and KeyFile are a PEM client certificate with its chain and its key, presented
	// to backends that ask for one.
	CertFile, KeyFile string
	// InsecureSkipVerify accepts any backend certificate.
	InsecureSkipVerify bool
}

// IsZero reports whether s asks for nothing beyond the defaults.
func (s Settings) IsZero() bool { return s == Settings{} }

// Config reads the files of s and returns the client TLS configuration, TLS 1.2 at least. It
// reads them on every call; callers keep the result.
func (s Settings) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify}
	var errs []error
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("ca_file: %w", err))
		default:
			c.RootCAs = x509.NewCertPool()
			if !c.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("ca_file %s: no PEM certificate in it", s.CAFile))
			}
		}
	}
	if s.CertFile != "" || s.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cert_file and key_file: %w", err))
		} else {
			c.Certificates = []tls.Certificate{cert}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}
