package testutil

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// SeriesWith gathers g and returns, sorted, every veloflux_* series (as name{label="value",...})
// that has one of the labels with the value: the series that name a pool or a backend.
func SeriesWith(t testing.TB, g prometheus.Gatherer, value string, labels ...string) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "veloflux_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := false
			var b strings.Builder
			b.WriteString(mf.GetName() + "{")
			for i, lp := range m.GetLabel() {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(lp.GetName() + "=" + `"` + lp.GetValue() + `"`)
				for _, l := range labels {
					match = match || lp.GetName() == l && lp.GetValue() == value
				}
			}
			if match {
				out = append(out, b.String()+"}")
			}
		}
	}
	sort.Strings(out)
	return out
}

// MetricNames returns the metric names of series as SeriesWith writes them, each once, in order.
func MetricNames(series []string) []string {
	var out []string
	for _, s := range series {
		if name, _, _ := strings.Cut(s, "{"); len(out) == 0 || out[len(out)-1] != name {
			out = append(out, name)
		}
	}
	return out
}
