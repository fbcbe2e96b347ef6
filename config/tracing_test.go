package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTracingSection(t *testing.T) {
	t.Run("keys", func(t *testing.T) {
		c, err := Parse([]byte(`
tracing:
  enabled: true
  endpoint: "collector:4317"
  headers: {X-Api-Key: k3y}
  sample_ratio: 0.5
  trust_incoming: none
  batch_timeout: 1s
`), []string{"VFX_TRACING__PROTOCOL=http"})
		if err != nil {
			t.Fatal(err)
		}
		tr := c.Tracing
		if !tr.Enabled || tr.Endpoint != "collector:4317" || tr.Protocol != "http" || tr.Headers["X-Api-Key"] != "k3y" ||
			tr.SampleRatio != 0.5 || tr.TrustIncoming != "none" || tr.BatchTimeout != time.Second || tr.ServiceName != "veloflux" {
			t.Errorf("tracing = %+v", tr)
		}
		if r := c.Redacted(); r.Tracing.Headers["X-Api-Key"] != redactedText || c.Tracing.Headers["X-Api-Key"] != "k3y" {
			t.Errorf("redacted header %q, original %q", r.Tracing.Headers["X-Api-Key"], c.Tracing.Headers["X-Api-Key"])
		}
		if got := Default().RestartNeeded(c); !slices.Contains(got, "tracing.sample_ratio") {
			t.Errorf("RestartNeeded = %v, want tracing.sample_ratio among them", got)
		}
	})
	t.Run("problems under the section's key", func(t *testing.T) {
		_, err := Parse([]byte(`
tracing:
  sample_ratio: 2
  trust_incoming: maybe
  headers: {X-Api-Key: 12345}
`), nil)
		var errs Errors
		if !errors.As(err, &errs) {
			t.Fatalf("Parse = %v, want Errors", err)
		}
		var paths []string
		for _, e := range errs {
			paths = append(paths, e.Path)
		}
		want := []string{`tracing.headers["X-Api-Key"]`, "tracing.sample_ratio", "tracing.trust_incoming"}
		if !slices.Equal(paths, want) {
			t.Errorf("problems at %v, want %v:\n%v", paths, want, err)
		}
		if strings.Contains(err.Error(), "12345") {
			t.Errorf("a problem quotes the secret header value: %v", err)
		}
	})
}
