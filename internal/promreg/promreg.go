// Package promreg registers a component's Prometheus collectors all or none, the one way
// every VeloFlux package does it.
package promreg

import "github.com/prometheus/client_golang/prometheus"

// Register registers every collector with reg, or none: when one fails, those registered
// before it are unregistered again, so a component that fails to start leaves the registry
// as it was and can be built again. A nil reg registers nothing (metrics kept, not exported).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, r := range cs[:i] {
				reg.Unregister(r)
			}
			return err
		}
	}
	return nil
}
