package proxy

import (
	"sort"
	"strings"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/internal/hostrule"
)

// route is one compiled discovery.Route.
type route struct {
	spec   discovery.Route
	prefix string // normalised path prefix; "/" matches everything
	pool   *pool
	geo    geoMode
}

// matches reports whether path is under r.prefix on a segment boundary: "/api" matches
// "/api" and "/api/x" but not "/apix".
func (r *route) matches(path string) bool {
	p := r.prefix
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || p[len(p)-1] == '/' || path[len(p)] == '/'
}

// upstreamPath returns the path to send upstream, with the prefix stripped when asked.
func (r *route) upstreamPath(path string) string {
	if !r.spec.StripPrefix || r.prefix == "/" {
		return path
	}
	rest := strings.TrimPrefix(path, r.prefix)
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}

// routeGroup holds the routes of one host, longest prefix first.
type routeGroup []*route

func (g routeGroup) match(path string) *route {
	for _, r := range g {
		if r.matches(path) {
			return r
		}
	}
	return nil
}

type wildcardGroup struct {
	suffix string // ".example.com"
	routes routeGroup
}

// router finds the route for a host and path. Host groups are tried from the most specific
// (host with port, exact host, longest wildcard suffix) to the default route; within a group
// the longest matching path prefix wins, and a group with no matching prefix falls through
// to the next, less specific one.
type router struct {
	exact     map[string]routeGroup
	wildcards []wildcardGroup
	fallback  routeGroup
}

func newRouter(routes []*route) router {
	rt := router{exact: make(map[string]routeGroup)}
	wild := make(map[string]routeGroup)
	for _, r := range routes {
		h := hostrule.NormalizeRoute(r.spec.Host)
		switch {
		case h == "":
			rt.fallback = append(rt.fallback, r)
		case strings.HasPrefix(h, "*."):
			wild[h[1:]] = append(wild[h[1:]], r)
		default:
			rt.exact[h] = append(rt.exact[h], r)
		}
	}
	byPrefix := func(g routeGroup) {
		sort.SliceStable(g, func(i, j int) bool { return len(g[i].prefix) > len(g[j].prefix) })
	}
	for _, g := range rt.exact {
		byPrefix(g)
	}
	byPrefix(rt.fallback)
	for suffix, g := range wild {
		byPrefix(g)
		rt.wildcards = append(rt.wildcards, wildcardGroup{suffix: suffix, routes: g})
	}
	sort.Slice(rt.wildcards, func(i, j int) bool {
		a, b := rt.wildcards[i].suffix, rt.wildcards[j].suffix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	return rt
}

// match returns the route for a request's Host header and path, or nil.
func (rt *router) match(hostHeader, path string) *route {
	host := lowerASCII(hostHeader)
	host = strings.Replace(host, ".:", ":", 1) // "example.com.:8443" is "example.com:8443"
	hostOnly := stripPort(host)
	if hostOnly != host {
		if r := rt.exact[host].match(path); r != nil {
			return r
		}
	}
	hostOnly = strings.TrimSuffix(hostOnly, ".")
	if r := rt.exact[hostOnly].match(path); r != nil {
		return r
	}
	for _, w := range rt.wildcards {
		if len(hostOnly) > len(w.suffix) && strings.HasSuffix(hostOnly, w.suffix) {
			if r := w.routes.match(path); r != nil {
				return r
			}
		}
	}
	return rt.fallback.match(path)
}

// stripPort removes a ":port" suffix from a Host header value, keeping IPv6 brackets.
func stripPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.IndexByte(h[i:], ']') >= 0 {
		return h
	}
	if strings.IndexByte(h, ']') < 0 && strings.IndexByte(h[:i], ':') >= 0 {
		return h // bare IPv6 address without port
	}
	return h[:i]
}

// lowerASCII lower-cases s, allocating only when s has an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// normalizePrefix turns "" into "/" and keeps everything else as configured.
func normalizePrefix(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
