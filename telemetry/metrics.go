package telemetry

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// unknown fills build_info labels whose value the binary does not carry, because an empty
// label value is indistinguishable from a missing label in PromQL.
const unknown = "unknown"

// NewRegistry returns a fresh Prometheus registry holding the Go runtime collector, the process
// collector and veloflux_build_info{version, revision, goversion} = 1. A fresh registry per call,
// rather than prometheus.DefaultRegisterer, keeps two nodes in one test process apart.
//
// version is the release version the binary was stamped with ("unknown" when empty). revision
// is the vcs.revision setting that the Go toolchain embeds when building from a VCS checkout,
// or "unknown" when it is absent (e.g. built with -buildvcs=false).
func NewRegistry(version string) *prometheus.Registry {
	info, ok := debug.ReadBuildInfo()
	return newRegistry(version, buildRevision(info, ok))
}

func newRegistry(version, revision string) *prometheus.Registry {
	if version == "" {
		version = unknown
	}
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "veloflux_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version":   version,
			"revision":  revision,
			"goversion": runtime.Version(),
		},
	})
	buildInfo.Set(1)
	// MustRegister cannot fail here: the registry is new and the three collectors describe
	// disjoint metric names.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
	)
	return reg
}

// buildRevision takes ReadBuildInfo's results as arguments so tests can feed it build infos
// the test binary itself does not have.
func buildRevision(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return unknown
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return unknown
}
