package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/geo"
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

// geoConfig is the locator's configuration from the geo section.
func geoConfig(c *config.Config) geo.Config {
	g := geo.DefaultConfig()
	g.Database, g.NodeRegion, g.CacheSize = c.Geo.Database, c.Geo.NodeRegion, c.Geo.CacheSize
	for _, r := range c.Geo.Regions {
		g.Regions = append(g.Regions, geo.Region{Name: r.Name, Lat: r.Lat, Lon: r.Lon})
	}
	g.CountryRegions, g.ContinentRegions = c.Geo.CountryRegions, c.Geo.ContinentRegions
	return g
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

// checkRegions reports region names the geo table does not know: the node's, the
// overrides' and static backends'. The config package checks only their spelling.
func checkRegions(c *config.Config) error {
	if !geoUsed(c) && c.Geo.Database == "" {
		return nil
	}
	known := map[string]bool{}
	for _, r := range geo.BuiltinRegions() {
		known[r.Name] = true
	}
	for _, r := range c.Geo.Regions {
		known[r.Name] = true
	}
	var errs []error
	unknown := func(path, name string) {
		if name != "" && !known[name] {
			errs = append(errs, fmt.Errorf("%s: unknown region %q (not built in, not in geo.regions)", path, name))
		}
	}
	unknown("geo.node_region", c.Geo.NodeRegion)
	for _, k := range sortedKeys(c.Geo.CountryRegions) {
		unknown(fmt.Sprintf("geo.country_regions[%q]", k), c.Geo.CountryRegions[k])
	}
	for _, k := range sortedKeys(c.Geo.ContinentRegions) {
		unknown(fmt.Sprintf("geo.continent_regions[%q]", k), c.Geo.ContinentRegions[k])
	}
	for i, p := range c.Pools {
		for j, b := range p.Backends {
			unknown(fmt.Sprintf("pools[%d].backends[%d].region", i, j), b.Region)
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
