package tracing

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
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
	// BatchTimeout is the longest a finished span waits for its batch to fill (512 spans)
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

// ConfigError is one problem of a Config, located by its key relative to the tracing
// section ("sample_ratio", `headers["X-Key"]`).
type ConfigError struct {
	Key string
	Msg string
}

func (e ConfigError) Error() string { return e.Key + ": " + e.Msg }

// Validate returns every problem of c at once, joined; each is a ConfigError.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Endpoint != "" {
		if msg := checkEndpoint(c.Endpoint); msg != "" {
			add("endpoint", "%s", msg)
		}
	}
	if c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP {
		add("protocol", "must be one of grpc, http; got %q", c.Protocol)
	}
	for name, value := range c.Headers {
		key := "headers[" + fmt.Sprintf("%q", name) + "]"
		if !httpguts.ValidHeaderFieldName(name) {
			add(key, "not a valid header name")
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			// The value is a secret: say what is wrong, not what it is.
			add(key, "the value holds a control character or a line break")
		}
	}
	if math.IsNaN(c.SampleRatio) || c.SampleRatio < 0 || c.SampleRatio > 1 {
		add("sample_ratio", "must be between 0 and 1, got %g", c.SampleRatio)
	}
	if strings.TrimSpace(c.ServiceName) == "" {
		add("service_name", "must not be empty")
	}
	switch c.TrustIncoming {
	case TrustAll, TrustTrusted, TrustNone:
	default:
		add("trust_incoming", "must be one of all, trusted, none; got %q", c.TrustIncoming)
	}
	if c.QueueSize < 1 {
		add("queue_size", "must be >= 1, got %d", c.QueueSize)
	}
	if c.BatchTimeout <= 0 {
		add("batch_timeout", "must be > 0, got %s", c.BatchTimeout)
	}
	if c.ExportTimeout <= 0 {
		add("export_timeout", "must be > 0, got %s", c.ExportTimeout)
	}
	return errors.Join(errs...)
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
