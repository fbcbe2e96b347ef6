package consul

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/http/httpguts"

	"github.com/veloflux/veloflux/discovery"
	"github.com/veloflux/veloflux/health/statusset"
	"github.com/veloflux/veloflux/internal/hostrule"
	"github.com/veloflux/veloflux/proxy/balance"
)

// Tag keys after "<prefix>.". Meta keys are the same with "." replaced by "_".
const (
	keyEnable      = "enable"
	keyRoute       = "route"
	keyStripPrefix = "strip_prefix"
	keyPool        = "pool"
	keyAlgorithm   = "algorithm"
	keyWeight      = "weight"
	keySticky      = "sticky"
	keyHealthPath  = "health.path"
	keyRegion      = "region"
	keyProtocol    = "protocol"
	keyGeo         = "geo"

	// The active check's other settings, as in the configuration file's health_check.
	keyHealthType         = "health.type"
	keyHealthMethod       = "health.method"
	keyHealthHost         = "health.host"
	keyHealthExpectStatus = "health.expect_status"
	keyHealthInterval     = "health.interval"
	keyHealthTimeout      = "health.timeout"
	keyHealthMaxInterval  = "health.max_interval"
	keyHealthRise         = "health.rise"
	keyHealthRetries      = "health.retries"
)

// knownKeys is every key, sorted, as the "unknown key" message lists them.
const knownKeys = "algorithm, enable, geo, health.expect_status, health.host, health.interval, health.max_interval, " +
	"health.method, health.path, health.retries, health.rise, health.timeout, health.type, " +
	"pool, protocol, region, route, sticky, strip_prefix, weight"

func isKnownKey(k string) bool {
	switch k {
	case keyEnable, keyRoute, keyStripPrefix, keyPool, keyAlgorithm, keyWeight, keySticky,
		keyHealthPath, keyRegion, keyProtocol, keyGeo,
		keyHealthType, keyHealthMethod, keyHealthHost, keyHealthExpectStatus, keyHealthInterval,
		keyHealthTimeout, keyHealthMaxInterval, keyHealthRise, keyHealthRetries:
		return true
	}
	return false
}

// dropsInstance reports whether a bad value of key drops the whole instance: these keys
// decide where traffic goes or how it is spoken, so a guessed default would send requests to
// the wrong place (route, pool), with the wrong path (strip_prefix), balanced against the
// owner's wish (algorithm) or in the wrong protocol. A bad value of any other key falls back
// to its default, which still serves correctly, only less well: a bad geo, for one, means off,
// which balances over every region instead of the nearest.
func dropsInstance(key string) bool {
	switch key {
	case keyRoute, keyPool, keyAlgorithm, keyStripPrefix, keyProtocol:
		return true
	}
	return false
}

const maxWeight = 10000

// enableState is what an instance says about being routed.
type enableState int

const (
	enableUnset enableState = iota
	enableTrue
	enableFalse
)

// routeSpec is one route an instance asks for; PathPrefix "" means every path.
type routeSpec struct {
	Host       string
	PathPrefix string
}

// String formats r as a route tag value; parseRoute(r.String()) returns r.
func (r routeSpec) String() string {
	if r.Host == "" && r.PathPrefix == "" {
		return "/"
	}
	return r.Host + r.PathPrefix
}

// settings is what one instance's tags and meta say, defaults applied. Pool "" means the
// service name.
type settings struct {
	Enable      enableState
	Routes      []routeSpec
	StripPrefix bool
	Pool        string
	Algorithm   string // "" means round_robin
	Weight      int
	Sticky      bool
	HealthPath  string
	// Health is the rest of the active check; zero fields leave a setting to the node's
	// configuration.
	Health   discovery.HealthCheck
	Region   string // "" means the datacenter
	Protocol string // "" means http
	// Geo is the geo mode of the instance's routes: "" (off), "nearest" or "redirect", as
	// discovery.Route.Geo. Off is stored as "" so that routes of instances without the tag
	// stay equal to what they were before the tag existed.
	Geo string
}

// tagProblem is one tag or meta entry that could not be used.
type tagProblem struct {
	Tag  string // the whole tag, or "key=value" for meta
	Meta bool
	Msg  string
	// Drop says the instance must not be routed at all.
	Drop bool
}

// tagParser reads VeloFlux tags and meta under one prefix.
type tagParser struct {
	prefix   string // "veloflux"
	tagStart string // "veloflux."
	metaKeys map[string]string
}

func newTagParser(prefix string) tagParser {
	p := tagParser{prefix: prefix, tagStart: prefix + ".", metaKeys: make(map[string]string, 20)}
	for k := range strings.SplitSeq(knownKeys, ", ") {
		p.metaKeys[prefix+"_"+strings.ReplaceAll(k, ".", "_")] = k
	}
	return p
}

// enableOf reads only the enable tag of a tag list, for deciding from the catalog's service
// list (the union of all instances' tags) whether a service is watched.
func (p tagParser) enableOf(tags []string) (hasTrue, hasFalse bool) {
	for _, t := range tags {
		switch t {
		case p.tagStart + keyEnable + "=true":
			hasTrue = true
		case p.tagStart + keyEnable + "=false":
			hasFalse = true
		}
	}
	return hasTrue, hasFalse
}

// watched reports whether a service with these merged tags is watched at all. The catalog's
// service list carries tags but not meta, which is why enable is a tag only. The "consul"
// service itself (the servers' RPC port) is never exposed by default.
func (p tagParser) watched(service string, tags []string, exposedByDefault bool) bool {
	hasTrue, hasFalse := p.enableOf(tags)
	switch {
	case hasTrue:
		return true
	case service == "consul":
		return false
	default:
		return exposedByDefault && !hasFalse
	}
}

// parse reads an instance's tags and meta. Tags win over meta for the same key; a key set
// twice with different values keeps the first. Problems never panic and never stop the
// parse: each bad entry is skipped and reported.
func (p tagParser) parse(tags []string, meta map[string]string) (settings, []tagProblem) {
	s := settings{Weight: 1}
	var probs []tagProblem
	fromTag := make(map[string]string, 4) // key -> first good value a tag set
	tagged := make(map[string]bool, 4)    // keys some tag sets, well or badly: meta does not apply
	for _, tag := range tags {
		rest, ok := strings.CutPrefix(tag, p.tagStart)
		if !ok {
			continue // another tool's tag
		}
		key, val, hasEq := strings.Cut(rest, "=")
		if !hasEq {
			probs = append(probs, tagProblem{Tag: tag, Msg: fmt.Sprintf("missing \"=\": write %s%s=<value>", p.tagStart, key)})
			continue
		}
		if !isKnownKey(key) {
			probs = append(probs, tagProblem{Tag: tag, Msg: unknownKeyMsg(p.tagStart + key)})
			continue
		}
		tagged[key] = true
		if msg, drop := p.apply(&s, key, val, fromTag); msg != "" {
			probs = append(probs, tagProblem{Tag: tag, Msg: msg, Drop: drop})
		}
	}
	metaKeys := make([]string, 0, len(meta))
	for k := range meta {
		if strings.HasPrefix(k, p.prefix+"_") {
			metaKeys = append(metaKeys, k)
		}
	}
	slices.Sort(metaKeys) // map order is random; problems must come out the same every time
	for _, mk := range metaKeys {
		val := meta[mk]
		entry := mk + "=" + val
		key, ok := p.metaKeys[mk]
		switch {
		case !ok:
			probs = append(probs, tagProblem{Tag: entry, Meta: true, Msg: unknownKeyMsg(mk)})
			continue
		case key == keyEnable:
			probs = append(probs, tagProblem{Tag: entry, Meta: true,
				Msg: fmt.Sprintf("enable must be a tag (%s%s=true): the service list that decides what is watched carries tags, not meta", p.tagStart, keyEnable)})
			continue
		}
		if tagged[key] {
			continue // tags win, even a bad one: its error says what to fix
		}
		if msg, drop := p.apply(&s, key, val, nil); msg != "" {
			probs = append(probs, tagProblem{Tag: entry, Meta: true, Msg: msg, Drop: drop})
		}
	}
	return s, probs
}

// apply sets one known key on s, or returns why it cannot and whether the instance must be
// dropped. seen records keys set by tags, to catch a single-valued key set twice; nil for meta.
func (p tagParser) apply(s *settings, key, val string, seen map[string]string) (msg string, drop bool) {
	drop = dropsInstance(key)
	if seen != nil && key != keyRoute {
		if first, dup := seen[key]; dup {
			switch {
			case first == val:
				return "", false
			case drop:
				return fmt.Sprintf("%s is set twice, to %q and %q: the instance is not routed until one goes", key, first, val), true
			}
			return fmt.Sprintf("%s is already set to %q by an earlier tag, which wins", key, first), false
		}
	}
	var err error
	switch key {
	case keyEnable:
		var b bool
		if b, err = parseBool(val); err == nil {
			s.Enable = enableFalse
			if b {
				s.Enable = enableTrue
			}
		}
	case keyRoute:
		var r routeSpec
		if r, err = parseRoute(val); err == nil && !slices.Contains(s.Routes, r) {
			s.Routes = append(s.Routes, r)
		}
	case keyStripPrefix:
		s.StripPrefix, err = parseBool(val)
	case keySticky:
		s.Sticky, err = parseBool(val)
	case keyPool:
		if err = checkPoolName(val); err == nil {
			s.Pool = val
		}
	case keyAlgorithm:
		if algos := balance.Algorithms(); !slices.Contains(algos, val) {
			err = fmt.Errorf("must be one of %s", strings.Join(algos, ", "))
		} else {
			s.Algorithm = val
		}
	case keyWeight:
		n, perr := strconv.Atoi(val)
		if perr != nil || n < 1 || n > maxWeight {
			return fmt.Sprintf("weight must be 1..%d", maxWeight), drop
		}
		s.Weight = n
	case keyHealthPath:
		if err = checkURLPath(val); err == nil {
			s.HealthPath = val
		}
	case keyHealthType:
		switch val {
		case "http", "tcp":
			s.Health.Type = val
		default:
			err = fmt.Errorf("must be http or tcp, got %q", val)
		}
	case keyHealthMethod:
		if err = checkMethod(val); err == nil {
			s.Health.Method = val
		}
	case keyHealthHost:
		if err = checkHealthHost(val); err == nil {
			s.Health.Host = val
		}
	case keyHealthExpectStatus:
		var set statusset.Set
		if set, err = statusset.Parse(val); err == nil {
			s.Health.ExpectStatus = set.String()
		}
	case keyHealthInterval:
		s.Health.Interval, err = parsePositiveDuration(val)
	case keyHealthTimeout:
		s.Health.Timeout, err = parsePositiveDuration(val)
	case keyHealthMaxInterval:
		s.Health.MaxInterval, err = parsePositiveDuration(val)
	case keyHealthRise:
		s.Health.Rise, err = parseCount(val)
	case keyHealthRetries:
		s.Health.Fall, err = parseCount(val)
	case keyRegion:
		if err = checkRegion(val); err == nil {
			s.Region = val
		}
	case keyProtocol:
		switch val {
		case "http", "https", "h2c":
			s.Protocol = val
		default:
			err = fmt.Errorf("must be http, https or h2c")
		}
	case keyGeo:
		switch val {
		case "off":
			s.Geo = ""
		case "nearest", "redirect":
			s.Geo = val
		default:
			err = fmt.Errorf("must be off, nearest or redirect, got %q", val)
		}
	}
	if err != nil {
		return key + " " + err.Error(), drop
	}
	if seen != nil {
		if _, dup := seen[key]; !dup {
			seen[key] = val
		}
	}
	return "", false
}

func unknownKeyMsg(key string) string {
	return fmt.Sprintf("unknown key %q (known: %s)", key, knownKeys)
}

// parseBool accepts only true and false, like the config file: "yes" or "1" in a tag is more
// likely a mistake than a wish.
func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false, got %q", v)
}

// parseRoute reads "[host][/path]": "example.com", "example.com/api", "/api",
// "*.example.com/api", "example.com:8443/x", "[2001:db8::1]:8443/x", or "/" for every host
// and path. Hosts are lower-cased (DNS is case-insensitive); a path of "/" is stored as "",
// which routes the same requests.
func parseRoute(v string) (routeSpec, error) {
	if v == "" {
		return routeSpec{}, fmt.Errorf("must not be empty: write / for every host and path")
	}
	host, path := "", v
	if !strings.HasPrefix(v, "/") {
		start := 0
		if strings.HasPrefix(v, "[") {
			if end := strings.IndexByte(v, ']'); end >= 0 {
				start = end // a "/" cannot be inside brackets, but keep the search after them
			}
		}
		if i := strings.IndexByte(v[start:], '/'); i >= 0 {
			host, path = v[:start+i], v[start+i:]
		} else {
			host, path = v, ""
		}
	}
	host = strings.ToLower(host)
	if msg := routeHost(host); msg != "" {
		return routeSpec{}, fmt.Errorf("%q: %s", v, msg)
	}
	if path == "/" {
		path = ""
	}
	switch {
	case strings.ContainsAny(path, "?#"):
		return routeSpec{}, fmt.Errorf("%q: the path must not hold a query or fragment", v)
	case strings.IndexFunc(path, isSpaceOrControl) >= 0:
		return routeSpec{}, fmt.Errorf("%q: the path must not contain spaces or control characters", v)
	}
	return routeSpec{Host: host, PathPrefix: path}, nil
}

// checkPoolName applies the config file's rule for pools[].name.
func checkPoolName(n string) error {
	if n == "" {
		return fmt.Errorf("must not be empty")
	}
	if strings.IndexFunc(n, func(r rune) bool { return !isNameChar(r) }) >= 0 {
		return fmt.Errorf("%q: use letters, digits, \".\", \"_\" and \"-\" only", n)
	}
	return nil
}

// checkRegion allows the same characters as a pool name: regions appear in metrics labels
// and are compared with GeoIP region names.
func checkRegion(n string) error { return checkPoolName(n) }

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// checkMethod applies the config file's rule for health_check.method: an RFC 9110 token.
func checkMethod(m string) error {
	if m == "" || strings.IndexFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) }) >= 0 {
		return fmt.Errorf("must be an HTTP method such as GET or HEAD, got %q", m)
	}
	return nil
}

// checkHealthHost applies the config file's rule for health_check.host: a route host
// without a wildcard.
func checkHealthHost(h string) error {
	if h == "" {
		return fmt.Errorf("must not be empty")
	}
	if msg := hostrule.Route(h); msg != "" {
		return fmt.Errorf("%q: %s", h, msg)
	}
	if strings.HasPrefix(h, "*.") {
		return fmt.Errorf("%q: a Host header cannot be a wildcard", h)
	}
	return nil
}

// maxCheckDuration bounds the durations of health tags: beyond a day a value is more likely
// a typo ("1000h" for "1000ms") than a wish.
const maxCheckDuration = 24 * time.Hour

func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > maxCheckDuration {
		return 0, fmt.Errorf("must be a duration from 1ms to 24h such as 10s, got %q", v)
	}
	return d, nil
}

// maxCheckCount bounds rise and retries: at the shortest sensible interval a larger count
// would keep a backend's state from changing for hours.
const maxCheckCount = 1000

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxCheckCount {
		return 0, fmt.Errorf("must be 1..%d, got %q", maxCheckCount, v)
	}
	return n, nil
}

// checkURLPath checks a health check path: it goes into a request line.
func checkURLPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must start with \"/\", got %q", p)
	case strings.IndexFunc(p, isSpaceOrControl) >= 0:
		return fmt.Errorf("must not contain spaces or control characters, got %q", p)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// routeHost returns why h cannot be the host of a veloflux.route tag, or "": the config
// file's rule for routes[].host.
func routeHost(h string) string {
	if h == "*" {
		return "\"*\" is not a host; write a route without a host (\"/api\" or \"/\")"
	}
	return hostrule.Route(h)
}
