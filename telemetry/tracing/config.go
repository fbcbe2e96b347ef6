package tracing

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// Protocols accepted in Config.Protocol.
const (
	ProtocolGRPC = "grpc" // OTLP over gRPC, default port 4317
	ProtocolHTTP = "http" // OTLP over HTTP with protobuf bodies, default port 4318
)

// Modes of Config.TrustIncoming: whose traceparent, tracestate and baggage are continued.
const (
	TrustAll     = "all"     // every client's: the proxy sits behind something that cleans them
	TrustTrusted = "trusted" // only from global.trusted_proxies; others start a new trace
	TrustNone    = "none"    // nobody's: every request starts a new trace
)

// Config is the tracing section. The zero values of Endpoint and Headers leave the choice to
// the OTEL_EXPORTER_OTLP_* variables or the SDK's defaults.
type Config struct {
	// Enabled turns tracing on. Default false: no span is made and trace headers pass
	// through to backends untouched.
	Enabled bool `koanf:"enabled"`
	// Endpoint is where spans go: host:port, or a URL (http:// or https://, whose scheme
	// then decides Insecure; for protocol http a URL's path replaces /v1/traces). Default ""
	// = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317
	// (grpc) or localhost:4318 (http).
	Endpoint string `koanf:"endpoint"`
	// Protocol is grpc or http (OTLP/HTTP with protobuf). Default grpc.
	Protocol string `koanf:"protocol"`
	// Insecure sends spans in clear text to a host:port Endpoint. Default false (TLS
	// verified against the system roots).
	Insecure bool `koanf:"insecure"`
	// Headers are sent with every export, e.g. an API key of a hosted collector. Default
	// none. Values are secret: Redacted hides them.
	Headers map[string]string `koanf:"headers" redact:"true"`
	// SampleRatio is the share of new traces recorded, 0..1. Parent-based: a request whose
	// incoming context is continued (TrustIncoming) follows the caller's decision. Default
	// 0.01: one request in a hundred costs almost nothing on a busy node and still shows
	// every route within seconds.
	SampleRatio float64 `koanf:"sample_ratio"`
	// ServiceName is the service.name of every span. Default "veloflux".
	ServiceName string `koanf:"service_name"`
	// TrustIncoming says whose incoming trace context is continued: all, trusted (peers in
	// global.trusted_proxies) or none. Default trusted, so an outside client cannot force
	// sampling or pick trace IDs.
	TrustIncoming string `koanf:"trust_incoming"`
	// QueueSize bounds the spans waiting for export; more are dropped and counted. Default
	// 2048, the OTel SDK's batch queue size, >= 1.
	QueueSize int `koanf:"queue_size"`
	// BatchTimeout is the longest a finished span waits for its batch to fill (64 spans)
	// before it is sent. Default 5s, > 0.
	BatchTimeout time.Duration `koanf:"batch_timeout"`
	// ExportTimeout bounds one export, retries included; its spans are dropped and counted
	// past it. Default 10s, > 0.
	ExportTimeout time.Duration `koanf:"export_timeout"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Protocol:      ProtocolGRPC,     // the OTLP default
		SampleRatio:   0.01,             // see Config.SampleRatio
		ServiceName:   "veloflux",       // what dashboards group the nodes under
		TrustIncoming: TrustTrusted,     // outsiders cannot force sampling
		QueueSize:     2048,             // the SDK's default: ~1 MB of spans at most
		BatchTimeout:  5 * time.Second,  // the SDK's default schedule delay
		ExportTimeout: 10 * time.Second, // a collector slower than this is down for our purposes
	}
}

// Validate returns every problem of c at once as fielderr.Errors, each at its key relative to
// the tracing section ("sample_ratio", `headers["X-Key"]`).
func (c Config) Validate() error {
	var e fielderr.Errors
	if c.Endpoint != "" {
		if msg := checkEndpoint(c.Endpoint); msg != "" {
			e.Add("endpoint", "%s", msg)
		}
	}
	e.OneOf("protocol", c.Protocol, ProtocolGRPC, ProtocolHTTP)
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		key := "headers[" + strconv.Quote(name) + "]"
		if !httpguts.ValidHeaderFieldName(name) {
			e.Add(key, "not a valid header name")
		}
		if !httpguts.ValidHeaderFieldValue(c.Headers[name]) {
			// The value is a secret: say what is wrong, not what it is.
			e.Add(key, "the value holds a control character or a line break")
		}
	}
	if math.IsNaN(c.SampleRatio) || c.SampleRatio < 0 || c.SampleRatio > 1 {
		e.Add("sample_ratio", "must be between 0 and 1, got %g", c.SampleRatio)
	}
	if strings.TrimSpace(c.ServiceName) == "" {
		e.Add("service_name", "must not be empty")
	}
	e.OneOf("trust_incoming", c.TrustIncoming, TrustAll, TrustTrusted, TrustNone)
	e.AtLeast("queue_size", c.QueueSize, 1)
	e.Positive("batch_timeout", c.BatchTimeout)
	e.Positive("export_timeout", c.ExportTimeout)
	return e.Err()
}

// checkEndpoint returns why e is neither host:port nor an http(s) URL with a host, or "".
func checkEndpoint(e string) string {
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		switch {
		case err != nil:
			return fmt.Sprintf("not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Sprintf("a URL must use http or https, got %q", u.Scheme)
		case u.Host == "" || u.Hostname() == "":
			return fmt.Sprintf("the URL %q has no host", e)
		case u.User != nil:
			return "the URL must not carry credentials; use headers"
		}
		return ""
	}
	host, port, err := net.SplitHostPort(e)
	switch {
	case err != nil:
		return fmt.Sprintf("must be host:port or an http(s) URL, got %q", e)
	case host == "":
		return fmt.Sprintf("%q has no host", e)
	case port == "":
		return fmt.Sprintf("%q has no port", e)
	}
	return ""
}
