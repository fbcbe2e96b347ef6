package consul

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/health/statusset"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    routeSpec
		wantErr string // substring; "" means valid
	}{
		{name: "host", in: "example.com", want: routeSpec{Host: "example.com"}},
		{name: "host and path", in: "example.com/api", want: routeSpec{Host: "example.com", PathPrefix: "/api"}},
		{name: "path only", in: "/api", want: routeSpec{PathPrefix: "/api"}},
		{name: "every host and path", in: "/", want: routeSpec{}},
		{name: "slash path is every path", in: "example.com/", want: routeSpec{Host: "example.com"}},
		{name: "wildcard", in: "*.example.com/api", want: routeSpec{Host: "*.example.com", PathPrefix: "/api"}},
		{name: "host with port", in: "example.com:8443/x", want: routeSpec{Host: "example.com:8443", PathPrefix: "/x"}},
		{name: "upper case host lowered", in: "Example.COM/API", want: routeSpec{Host: "example.com", PathPrefix: "/API"}},
		{name: "ipv4 host", in: "10.0.0.1:8080/x", want: routeSpec{Host: "10.0.0.1:8080", PathPrefix: "/x"}},
		{name: "ipv6 host", in: "[2001:db8::1]:8443/x", want: routeSpec{Host: "[2001:db8::1]:8443", PathPrefix: "/x"}},
		{name: "trailing slash kept", in: "example.com/api/", want: routeSpec{Host: "example.com", PathPrefix: "/api/"}},
		{name: "underscore host", in: "my_svc.internal", want: routeSpec{Host: "my_svc.internal"}},
		{name: "empty", in: "", wantErr: "must not be empty"},
		{name: "star alone", in: "*", wantErr: "is not a host"},
		{name: "star with path", in: "*/api", wantErr: "is not a host"},
		{name: "wildcard inside", in: "a.*.example.com", wantErr: "whole leftmost label"},
		{name: "space in host", in: "exa mple.com", wantErr: "invalid character"},
		{name: "space in path", in: "example.com/a b", wantErr: "spaces or control"},
		{name: "query", in: "example.com/a?b=1", wantErr: "query or fragment"},
		{name: "fragment", in: "/a#b", wantErr: "query or fragment"},
		{name: "bad port", in: "example.com:http/x", wantErr: "invalid port"},
		{name: "port out of range", in: "example.com:70000", wantErr: "out of range"},
		{name: "port zero", in: "example.com:0/x", wantErr: "out of range"},
		{name: "empty label", in: "example..com", wantErr: "empty label"},
		{name: "trailing dot", in: "example.com./x", wantErr: "empty label"},
		{name: "dash label", in: "-a.example.com", wantErr: "must not start or end"},
		{name: "unclosed bracket", in: "[2001:db8::1/x", wantErr: "missing"},
		{name: "ipv4 in brackets", in: "[10.0.0.1]:80", wantErr: "not an IPv6 address"},
		{name: "ipv6 zone", in: "[fe80::1%eth0]:80", wantErr: "not an IPv6 address"},
		{name: "text after bracket", in: "[::1]x/y", wantErr: "unexpected text"},
		{name: "wildcard ip", in: "*.10.0.0.1", wantErr: "cannot have a wildcard"},
		{name: "unicode host", in: "bücher.example", wantErr: "punycode"},
		{name: "long label", in: strings.Repeat("a", 64) + ".com", wantErr: "longer than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoute(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseRoute(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseRoute(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if again, err := parseRoute(got.String()); err != nil || again != got {
				t.Fatalf("round trip of %q via %q = %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestParseTags(t *testing.T) {
	p := newTagParser("veloflux")
	def := settings{Weight: 1}
	with := func(f func(*settings)) settings {
		s := def
		f(&s)
		return s
	}
	tests := []struct {
		name  string
		tags  []string
		meta  map[string]string
		want  settings
		probs []tagProblem
	}{
		{name: "nothing", want: def},
		{name: "other tools' tags ignored", tags: []string{"traefik.enable=true", "primary", "veloflux", "velofluxx.weight=3"}, want: def},
		{
			name: "every key",
			tags: []string{
				"veloflux.enable=true", "veloflux.route=example.com/api", "veloflux.route=/health",
				"veloflux.strip_prefix=true", "veloflux.pool=api", "veloflux.algorithm=least_conn",
				"veloflux.weight=10000", "veloflux.sticky=true", "veloflux.health.path=/ready",
				"veloflux.region=eu-west", "veloflux.protocol=h2c", "veloflux.geo=redirect",
			},
			want: settings{
				Enable: enableTrue, StripPrefix: true, Pool: "api", Algorithm: "least_conn", Weight: 10000,
				Sticky: true, HealthPath: "/ready", Region: "eu-west", Protocol: "h2c", Geo: "redirect",
				Routes: []routeSpec{{Host: "example.com", PathPrefix: "/api"}, {PathPrefix: "/health"}},
			},
		},
		{name: "enable false", tags: []string{"veloflux.enable=false"}, want: with(func(s *settings) { s.Enable = enableFalse })},
		{
			name: "duplicate route once",
			tags: []string{"veloflux.route=a.example", "veloflux.route=A.example/", "veloflux.route=b.example"},
			want: with(func(s *settings) { s.Routes = []routeSpec{{Host: "a.example"}, {Host: "b.example"}} }),
		},
		{
			name:  "bad weight skips the tag",
			tags:  []string{"veloflux.weight=abc", "veloflux.sticky=true"},
			want:  with(func(s *settings) { s.Sticky = true }),
			probs: []tagProblem{{Tag: "veloflux.weight=abc", Msg: "weight must be 1..10000"}},
		},
		{
			name:  "weight zero",
			tags:  []string{"veloflux.weight=0"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.weight=0", Msg: "weight must be 1..10000"}},
		},
		{
			name:  "weight too big",
			tags:  []string{"veloflux.weight=10001"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.weight=10001", Msg: "weight must be 1..10000"}},
		},
		{
			name:  "bad route drops the instance, keeps the good ones parsed",
			tags:  []string{"veloflux.route=exa mple.com", "veloflux.route=ok.example"},
			want:  with(func(s *settings) { s.Routes = []routeSpec{{Host: "ok.example"}} }),
			probs: []tagProblem{{Tag: "veloflux.route=exa mple.com", Msg: `route "exa mple.com": invalid host "exa mple.com": invalid character ' ' (internationalized names must be written in punycode)`, Drop: true}},
		},
		{
			name:  "bad pool drops",
			tags:  []string{"veloflux.pool=a b"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.pool=a b", Msg: `pool "a b": use letters, digits, ".", "_" and "-" only`, Drop: true}},
		},
		{
			name:  "bad algorithm drops",
			tags:  []string{"veloflux.algorithm=fastest"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.algorithm=fastest", Msg: "algorithm must be one of ip_hash, least_conn, random, round_robin, weighted", Drop: true}},
		},
		{
			name:  "bad strip_prefix drops",
			tags:  []string{"veloflux.strip_prefix=yes"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.strip_prefix=yes", Msg: `strip_prefix must be true or false, got "yes"`, Drop: true}},
		},
		{
			name:  "bad protocol drops",
			tags:  []string{"veloflux.protocol=grpc"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.protocol=grpc", Msg: "protocol must be http, https or h2c", Drop: true}},
		},
		{
			name:  "bad sticky skips",
			tags:  []string{"veloflux.sticky=1"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.sticky=1", Msg: `sticky must be true or false, got "1"`}},
		},
		{
			name:  "bad enable skips",
			tags:  []string{"veloflux.enable=yes"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.enable=yes", Msg: `enable must be true or false, got "yes"`}},
		},
		{
			name:  "bad health path skips",
			tags:  []string{"veloflux.health.path=health"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.health.path=health", Msg: `health.path must start with "/", got "health"`}},
		},
		{
			name:  "bad region skips",
			tags:  []string{"veloflux.region=eu west"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.region=eu west", Msg: `region "eu west": use letters, digits, ".", "_" and "-" only`}},
		},
		{
			name:  "typo is an unknown key",
			tags:  []string{"veloflux.wieght=3"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.wieght=3", Msg: `unknown key "veloflux.wieght" (known: ` + knownKeys + ")"}},
		},
		{
			name:  "meta spelling as a tag is unknown",
			tags:  []string{"veloflux.health_path=/x"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.health_path=/x", Msg: `unknown key "veloflux.health_path" (known: ` + knownKeys + ")"}},
		},
		{
			name:  "missing equals",
			tags:  []string{"veloflux.enable"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.enable", Msg: `missing "=": write veloflux.enable=<value>`}},
		},
		{
			name:  "conflicting repeat keeps the first",
			tags:  []string{"veloflux.weight=5", "veloflux.weight=7", "veloflux.weight=5"},
			want:  with(func(s *settings) { s.Weight = 5 }),
			probs: []tagProblem{{Tag: "veloflux.weight=7", Msg: `weight is already set to "5" by an earlier tag, which wins`}},
		},
		{
			name:  "conflicting repeat of a key that places traffic drops the instance",
			tags:  []string{"veloflux.pool=a", "veloflux.pool=b"},
			want:  with(func(s *settings) { s.Pool = "a" }),
			probs: []tagProblem{{Tag: "veloflux.pool=b", Msg: `pool is set twice, to "a" and "b": the instance is not routed until one goes`, Drop: true}},
		},
		{
			name: "meta keys",
			meta: map[string]string{
				"veloflux_route": "example.com/m", "veloflux_strip_prefix": "true", "veloflux_pool": "mp",
				"veloflux_algorithm": "random", "veloflux_weight": "4", "veloflux_sticky": "true",
				"veloflux_health_path": "/hz", "veloflux_region": "r1", "veloflux_protocol": "https",
				"veloflux_geo": "nearest",
				"version":      "1.2", // not ours
			},
			want: settings{
				Routes: []routeSpec{{Host: "example.com", PathPrefix: "/m"}}, StripPrefix: true, Pool: "mp",
				Algorithm: "random", Weight: 4, Sticky: true, HealthPath: "/hz", Region: "r1", Protocol: "https",
				Geo: "nearest",
			},
		},
		{
			name: "tags win over meta",
			tags: []string{"veloflux.weight=9", "veloflux.route=t.example"},
			meta: map[string]string{"veloflux_weight": "2", "veloflux_route": "m.example", "veloflux_region": "mr"},
			want: with(func(s *settings) {
				s.Weight, s.Region, s.Routes = 9, "mr", []routeSpec{{Host: "t.example"}}
			}),
		},
		{
			name:  "a bad tag still wins over meta",
			tags:  []string{"veloflux.weight=x"},
			meta:  map[string]string{"veloflux_weight": "4"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux.weight=x", Msg: "weight must be 1..10000"}},
		},
		{
			name: "bad meta",
			meta: map[string]string{"veloflux_weight": "x", "veloflux_colour": "blue", "veloflux_route": "*"},
			want: def,
			probs: []tagProblem{
				{Tag: "veloflux_colour=blue", Meta: true, Msg: `unknown key "veloflux_colour" (known: ` + knownKeys + ")"},
				{Tag: "veloflux_route=*", Meta: true, Msg: `route "*": "*" is not a host; write a route without a host ("/api" or "/")`, Drop: true},
				{Tag: "veloflux_weight=x", Meta: true, Msg: "weight must be 1..10000"},
			},
		},
		{
			name:  "enable in meta is refused",
			meta:  map[string]string{"veloflux_enable": "true"},
			want:  def,
			probs: []tagProblem{{Tag: "veloflux_enable=true", Meta: true, Msg: "enable must be a tag (veloflux.enable=true): the service list that decides what is watched carries tags, not meta"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, probs := p.parse(tt.tags, tt.meta)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(probs, tt.probs) {
				t.Errorf("problems\n got %+v\nwant %+v", probs, tt.probs)
			}
		})
	}
}

// TestParseTagsGeo: geo takes exactly the values of discovery.Route.Geo, stores off as "", and a
// bad value falls back to off without dropping the instance, since off still serves correctly.
func TestParseTagsGeo(t *testing.T) {
	p := newTagParser("veloflux")
	tests := []struct {
		name    string
		tags    []string
		meta    map[string]string
		wantGeo string
		probs   []tagProblem
	}{
		{name: "unset is off", wantGeo: ""},
		{name: "off is stored as empty", tags: []string{"veloflux.geo=off"}, wantGeo: ""},
		{name: "nearest", tags: []string{"veloflux.geo=nearest"}, wantGeo: "nearest"},
		{name: "redirect", tags: []string{"veloflux.geo=redirect"}, wantGeo: "redirect"},
		{name: "meta nearest", meta: map[string]string{"veloflux_geo": "nearest"}, wantGeo: "nearest"},
		{name: "meta off", meta: map[string]string{"veloflux_geo": "off"}, wantGeo: ""},
		{name: "tag wins over meta", tags: []string{"veloflux.geo=off"}, meta: map[string]string{"veloflux_geo": "redirect"}, wantGeo: ""},
		{
			name:  "unknown value falls back to off, instance kept",
			tags:  []string{"veloflux.geo=everywhere"},
			probs: []tagProblem{{Tag: "veloflux.geo=everywhere", Msg: `geo must be off, nearest or redirect, got "everywhere"`}},
		},
		{
			name:  "values are exact: upper case is refused",
			tags:  []string{"veloflux.geo=Nearest"},
			probs: []tagProblem{{Tag: "veloflux.geo=Nearest", Msg: `geo must be off, nearest or redirect, got "Nearest"`}},
		},
		{
			name:  "empty value is refused",
			tags:  []string{"veloflux.geo="},
			probs: []tagProblem{{Tag: "veloflux.geo=", Msg: `geo must be off, nearest or redirect, got ""`}},
		},
		{
			name:  "a bad tag still wins over good meta",
			tags:  []string{"veloflux.geo=near"},
			meta:  map[string]string{"veloflux_geo": "nearest"},
			probs: []tagProblem{{Tag: "veloflux.geo=near", Msg: `geo must be off, nearest or redirect, got "near"`}},
		},
		{
			name:  "bad meta falls back to off",
			meta:  map[string]string{"veloflux_geo": "closest"},
			probs: []tagProblem{{Tag: "veloflux_geo=closest", Meta: true, Msg: `geo must be off, nearest or redirect, got "closest"`}},
		},
		{
			name:    "conflicting repeat keeps the first, instance kept",
			tags:    []string{"veloflux.geo=nearest", "veloflux.geo=redirect"},
			wantGeo: "nearest",
			probs:   []tagProblem{{Tag: "veloflux.geo=redirect", Msg: `geo is already set to "nearest" by an earlier tag, which wins`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, probs := p.parse(tt.tags, tt.meta)
			if want := (settings{Weight: 1, Geo: tt.wantGeo}); !reflect.DeepEqual(got, want) {
				t.Errorf("settings\n got %+v\nwant %+v", got, want)
			}
			if !reflect.DeepEqual(probs, tt.probs) {
				t.Errorf("problems\n got %+v\nwant %+v", probs, tt.probs)
			}
		})
	}
}

func TestParseTagsPrefix(t *testing.T) {
	p := newTagParser("edge")
	got, probs := p.parse([]string{"edge.weight=3", "veloflux.weight=5"}, map[string]string{"edge_region": "x", "veloflux_region": "y"})
	if got.Weight != 3 || got.Region != "x" || len(probs) != 0 {
		t.Fatalf("prefix edge: got %+v, %v; want weight 3, region x, no problems", got, probs)
	}
}

func TestWatched(t *testing.T) {
	p := newTagParser("veloflux")
	tests := []struct {
		name    string
		service string
		tags    []string
		exposed bool
		want    bool
	}{
		{name: "opted in", service: "web", tags: []string{"veloflux.enable=true"}, want: true},
		{name: "no tag", service: "web", want: false},
		{name: "no tag, exposed by default", service: "web", exposed: true, want: true},
		{name: "opted out, exposed by default", service: "web", tags: []string{"veloflux.enable=false"}, exposed: true, want: false},
		{name: "mixed instances opt in wins", service: "web", tags: []string{"veloflux.enable=false", "veloflux.enable=true"}, want: true},
		{name: "malformed enable does not opt in", service: "web", tags: []string{"veloflux.enable=yes"}, want: false},
		{name: "consul never by default", service: "consul", exposed: true, want: false},
		{name: "consul when asked", service: "consul", tags: []string{"veloflux.enable=true"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.watched(tt.service, tt.tags, tt.exposed); got != tt.want {
				t.Fatalf("watched(%q, %q, exposed=%t) = %t, want %t", tt.service, tt.tags, tt.exposed, got, tt.want)
			}
		})
	}
}

// FuzzParseTags checks that no tag or meta value panics the parser, that every problem names
// its entry, and that every accepted route formats back to a tag that parses to itself.
func FuzzParseTags(f *testing.F) {
	for _, seed := range []string{
		"veloflux.route=example.com/api", "veloflux.route=[2001:db8::1]:8443/x", "veloflux.route=*.a.b:1/",
		"veloflux.weight=10000", "veloflux.enable=true", "veloflux.route=/", "veloflux.route=[", "veloflux.health.path=/h",
		"veloflux.route=a:b:c", "veloflux.route=[::1]", "veloflux.=", "veloflux.route=E\u0301.com",
		"veloflux.geo=nearest\nveloflux.geo=redirect", "veloflux.geo=off",
		"veloflux.health.type=tcp\nveloflux.health.method=HEAD", "veloflux.health.expect_status=200-299,301",
		"veloflux.health.host=[::1]:80", "veloflux.health.interval=1h30m\nveloflux.health.rise=1000",
	} {
		f.Add(seed, "veloflux_route", "/m")
	}
	p := newTagParser("veloflux")
	f.Fuzz(func(t *testing.T, tags, metaKey, metaVal string) {
		s, probs := p.parse(strings.Split(tags, "\n"), map[string]string{metaKey: metaVal})
		for _, pr := range probs {
			if pr.Tag == "" || pr.Msg == "" {
				t.Fatalf("problem without entry or message: %+v", pr)
			}
		}
		if s.Weight < 1 || s.Weight > maxWeight {
			t.Fatalf("weight %d accepted", s.Weight)
		}
		// Accepted health settings must be ones the checker takes without falling back.
		h := s.Health
		if h.Type != "" && h.Type != "http" && h.Type != "tcp" {
			t.Fatalf("health type %q accepted", h.Type)
		}
		if h.Method != "" && checkMethod(h.Method) != nil {
			t.Fatalf("health method %q accepted", h.Method)
		}
		if h.ExpectStatus != "" {
			if set, err := statusset.Parse(h.ExpectStatus); err != nil || set.String() != h.ExpectStatus {
				t.Fatalf("expect_status %q accepted but not canonical: %v", h.ExpectStatus, err)
			}
		}
		for _, d := range []time.Duration{h.Interval, h.Timeout, h.MaxInterval} {
			if d < 0 || d > maxCheckDuration {
				t.Fatalf("health duration %s accepted", d)
			}
		}
		if h.Rise < 0 || h.Rise > maxCheckCount || h.Fall < 0 || h.Fall > maxCheckCount {
			t.Fatalf("health rise %d / retries %d accepted", h.Rise, h.Fall)
		}
		// Any other geo value would make the proxy refuse the whole snapshot.
		if s.Geo != "" && s.Geo != "nearest" && s.Geo != "redirect" {
			t.Fatalf("geo %q accepted", s.Geo)
		}
		for _, r := range s.Routes {
			again, err := parseRoute(r.String())
			if err != nil || again != r {
				t.Fatalf("route %+v formats as %q, which parses to %+v, %v", r, r.String(), again, err)
			}
			if msg := routeHost(r.Host); msg != "" {
				t.Fatalf("accepted route host %q is invalid: %s", r.Host, msg)
			}
		}
	})
}

// docsFile is the user reference that the Docs tests keep honest.
const docsFile = "../../docs/consul-tags.md"

// docsBlock returns the lines after the HTML comment marker in docs/consul-tags.md: the
// table rows that follow it, or the content of the fenced code block that follows it.
func docsBlock(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- example:"+marker+" -->\n")
	if !ok {
		t.Fatalf("%s: marker %q missing", docsFile, marker)
	}
	lines := strings.Split(after, "\n")
	var out []string
	if strings.HasPrefix(lines[0], "```") {
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "```") {
				return out
			}
			out = append(out, l)
		}
		t.Fatalf("%s: code block after %q not closed", docsFile, marker)
	}
	for _, l := range lines[2:] { // skip the header and the |---| line
		if !strings.HasPrefix(l, "|") {
			break
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no table rows after %q", docsFile, marker)
	}
	return out
}

// tableCells splits a Markdown table row and removes the code backticks of each cell.
func tableCells(row string) []string {
	cells := strings.Split(strings.Trim(row, "|"), " | ")
	for i, c := range cells {
		cells[i] = strings.Trim(strings.TrimSpace(c), "`")
	}
	return cells
}

func TestDocsRouteTable(t *testing.T) {
	for _, row := range docsBlock(t, "routes") {
		c := tableCells(row)
		t.Run(c[0], func(t *testing.T) {
			want := routeSpec{Host: c[1], PathPrefix: c[2]}
			if c[1] == "*(any host)*" {
				want.Host = ""
			}
			if c[2] == "*(every path)*" {
				want.PathPrefix = ""
			}
			if got, err := parseRoute(c[0]); err != nil || got != want {
				t.Fatalf("docs say %q routes %+v; parseRoute gives %+v, %v", c[0], want, got, err)
			}
		})
	}
}

func TestDocsErrorTable(t *testing.T) {
	p := newTagParser("veloflux")
	for _, row := range docsBlock(t, "errors") {
		c := tableCells(row)
		t.Run(c[0], func(t *testing.T) {
			var tags []string
			var meta map[string]string
			entry, isMeta := strings.CutSuffix(c[0], "` (meta)")
			if isMeta {
				k, v, _ := strings.Cut(entry, "=")
				meta = map[string]string{k: v}
			} else {
				tags = []string{entry}
			}
			_, probs := p.parse(tags, meta)
			want := tagProblem{Tag: entry, Meta: isMeta, Msg: c[1], Drop: c[2] == "instance dropped"}
			if len(probs) != 1 || probs[0] != want {
				t.Fatalf("docs say %+v; the parser reports %+v", want, probs)
			}
		})
	}
}
