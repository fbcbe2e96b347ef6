package main

import (
	"github.com/veloflux/veloflux/config"
)

// geoUsed reports whether any route routes by geography.
func geoUsed(c *config.Config) bool {
	for _, r := range c.Routes {
		if r.Geo != "" && r.Geo != config.GeoOff {
			return true
		}
	}
	return false
}

// redirectHosts maps regions to the host of geo: redirect answers.
func redirectHosts(c *config.Config) map[string]string {
	out := map[string]string{}
	for _, r := range c.Geo.Regions {
		if r.RedirectHost != "" {
			out[r.Name] = r.RedirectHost
		}
	}
	return out
}
