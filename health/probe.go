package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/localerr"
)

const (
	// maxDrain bounds how much of a probe's response body is read: enough to let a small
	// keep-alive-friendly body complete, never enough for a misbehaving backend that streams
	// forever to hold the probe until its timeout.
	maxDrain = 4 << 10
	// maxReason keeps LastError and log lines short whatever the transport says.
	maxReason = 128
)

// newDefaultClient is the client used when NewChecker gets nil.
func newDefaultClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// Probes go straight to the backend; an HTTP_PROXY from the environment would
			// make every backend's health the proxy's health.
			Proxy:       nil,
			DialContext: (&net.Dialer{KeepAlive: -1}).DialContext,
			// Every probe dials afresh: it then also proves the backend still accepts new
			// connections, and thousands of targets don't pin thousands of idle sockets.
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		// A 3xx is judged by expect_status (2xx and 3xx pass by default); following it would
		// probe some other URL, maybe another host, and report its health as this backend's.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// probeURL is the URL probed for t. A path without a leading slash is taken as relative to
// the root so "healthz" and "/healthz" mean the same.
func probeURL(t Target) string {
	path := t.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if t.Scheme == "https" {
		return "https://" + t.Address + path
	}
	return "http://" + t.Address + path
}

// newInsecureClient probes https backends configured to skip certificate verification.
func newInsecureClient() *http.Client {
	c := newDefaultClient()
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for backends configured with tls_skip_verify
	return c
}

// newH2CClient probes backends that speak HTTP/2 without TLS. Unlike the other probes, these
// keep their connections between probes; Checker.Run closes them when it stops.
func newH2CClient() *http.Client {
	c := newDefaultClient()
	tr := c.Transport.(*http.Transport)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr.Protocols = &protos
	tr.DisableKeepAlives = false
	return c
}

// probe runs one check of t and returns "" on success or a short reason. An http target
// passes when its status is in expect; a tcp target when the connection opens. ctx carries
// the probe's deadline. local reports a failure this node caused (out of file descriptors,
// ports or buffers, see localerr), which says nothing about the backend.
func probe(ctx context.Context, client *http.Client, t Target, expect statusset.Set) (reason string, local bool) {
	if t.Type == TypeTCP {
		return probeTCP(ctx, t.Address)
	}
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, probeURL(t), nil)
	if err != nil {
		return truncate(fmt.Sprintf("invalid target: %v", unwrapURLError(err))), false
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	req.Header.Set("User-Agent", "VeloFlux-HealthCheck/1")
	resp, err := client.Do(req)
	if err != nil {
		return failureReason(err), localerr.Is(err)
	}
	// Drain (bounded) before closing so a backend that answers with a body is not reset
	// mid-write; the status has already decided the result, so drain errors don't matter.
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
	if !expect.Contains(resp.StatusCode) {
		return fmt.Sprintf("status %d", resp.StatusCode), false
	}
	return "", false
}

// probeTCP opens a connection to addr and closes it at once: the backend's listener
// accepts, which is all a tcp check asks. Like the HTTP client, it never keeps the socket.
func probeTCP(ctx context.Context, addr string) (reason string, local bool) {
	conn, err := (&net.Dialer{KeepAlive: -1}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return failureReason(err), localerr.Is(err)
	}
	_ = conn.Close()
	return "", false
}

// failureReason turns a transport error into the short reason shown in logs and the admin
// API, e.g. "timeout" or "dial tcp: connection refused", dropping the URL and addresses that
// the caller already knows.
func failureReason(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return truncate(op.Op + " " + op.Net + ": " + innerReason(op.Err))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed before response"
	}
	return truncate(unwrapURLError(err).Error())
}

func innerReason(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "lookup " + dns.Name + ": " + dns.Err
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return sys.Err.Error()
	}
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// unwrapURLError drops the `Get "http://...":` prefix the client puts on every error.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func truncate(s string) string {
	if len(s) <= maxReason {
		return s
	}
	// Cutting may split a multi-byte rune; drop the fragment rather than log invalid UTF-8.
	return strings.ToValidUTF8(s[:maxReason-3], "") + "..."
}
