package geo

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/oschwald/geoip2-golang/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/fielderr"
)

// Location is where the database places a client.
type Location struct {
	Country   string  // ISO 3166-1 alpha-2 code, "DE"; "" when the database has none
	Continent string  // continent code: AF AN AS EU NA OC SA; "" when the database has none
	Lat, Lon  float64 // degrees; meaningful only when HasCoords
	HasCoords bool    // false for Country databases and for records without a position
}

// locEntry is the answer for one location: shared by every address there and immutable.
type locEntry struct {
	loc   Location
	ok    bool     // false: the client cannot be located
	order []string // every known region, nearest first; shared, never modified
}

// orderKey is what an order depends on: the region forced first (-1 for none) and the
// point the others are sorted by distance from.
type orderKey struct {
	first    int
	lat, lon float64
}

// Locator places clients with a GeoIP database and orders regions by distance from them.
// All methods are safe for concurrent use. Locate and Order answer from memory and never
// block on the file system; Run keeps the database current.
type Locator struct {
	path, dir, base string
	nodeRegion      string
	logger          *slog.Logger
	metrics         *metrics

	table          regionTable
	countryFirst   map[string]int // country code -> index in table.regions
	continentFirst map[string]int
	nodeKey        orderKey
	nodeOrder      []string
	unknown        *locEntry // the shared answer for clients that cannot be located
	cacheSize      int

	// state is the database being served with its address cache; replaced whole on reload.
	state atomic.Pointer[dbState]

	// mu guards locs and orders, which dedupe answers across addresses: every address of
	// one city shares one entry and one order. Only cache misses take it.
	mu     sync.Mutex
	locs   *simplelru.LRU[Location, *locEntry]
	orders *simplelru.LRU[orderKey, []string]

	running  atomic.Bool
	debounce time.Duration // quiet time after the last file event before a reload
	// fileInfo and fileSum identify the file content being served; only Run uses them after New.
	fileInfo os.FileInfo
	fileSum  uint64
}

// reloadDebounce lets the events of one update (a copy in many writes, a remove then a
// rename) settle into one reload. Nothing waits for a new release to the second, and a longer
// pause makes it likelier that a slow copy is complete when it is read.
const reloadDebounce = 500 * time.Millisecond

// New opens cfg.Database (memory-mapped) and checks it with one lookup. A missing or corrupt
// file, or a region name that is neither built in nor in cfg.Regions, is an error. logger nil
// discards logs; reg nil leaves the metrics unregistered. Call Run to follow updates of the
// file and, at the end, to close it.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Locator, error) {
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	e := cfg.validate()
	if cfg.Database == "" {
		e = append(fielderr.Errors{{Path: "database", Msg: "required"}}, e...)
	}
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("geo: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	path, err := filepath.Abs(cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("geo: database path %q: %w", cfg.Database, err)
	}
	l := &Locator{
		path:           path,
		dir:            filepath.Dir(path),
		base:           filepath.Base(path),
		nodeRegion:     cfg.NodeRegion,
		logger:         logger,
		metrics:        m,
		table:          newRegionTable(cfg.Regions),
		countryFirst:   make(map[string]int, len(cfg.CountryRegions)),
		continentFirst: make(map[string]int, len(cfg.ContinentRegions)),
		cacheSize:      cfg.CacheSize,
		debounce:       reloadDebounce,
	}
	for code, region := range cfg.CountryRegions {
		l.countryFirst[code] = l.table.index[region]
	}
	for code, region := range cfg.ContinentRegions {
		l.continentFirst[code] = l.table.index[region]
	}
	node := l.table.index[cfg.NodeRegion]
	l.nodeKey = orderKey{first: node, lat: l.table.regions[node].Lat, lon: l.table.regions[node].Lon}
	l.nodeOrder = l.computeOrder(l.nodeKey)
	l.unknown = &locEntry{order: l.nodeOrder}
	// Entries of evicted locations live on while addresses in the cache point at them, so
	// these only bound the dedupe tables; a disabled address cache still dedupes.
	locCap := cfg.CacheSize
	if locCap < 0 {
		locCap = 4096
	}
	if l.locs, err = simplelru.NewLRU[Location, *locEntry](locCap, nil); err != nil {
		return nil, fmt.Errorf("geo: location table: %w", err)
	}
	if l.orders, err = simplelru.NewLRU[orderKey, []string](locCap, nil); err != nil {
		return nil, fmt.Errorf("geo: order table: %w", err)
	}

	// Identify the content before opening it: if the file is replaced in between, the next
	// event sees a different sum and loads it again, which is only one spare reload.
	l.fileInfo, l.fileSum, err = fingerprint(path)
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	r, err := openDatabase(path)
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	l.state.Store(l.newState(r))
	m.buildTimestamp.Set(float64(r.Metadata().BuildEpoch))
	logger.Info("geo database loaded", "path", path, "type", r.Metadata().DatabaseType,
		"built", time.Unix(int64(r.Metadata().BuildEpoch), 0).UTC(), "regions", len(l.table.regions))
	return l, nil
}

// NodeRegion returns the region this node runs in (Config.NodeRegion).
func (l *Locator) NodeRegion() string { return l.nodeRegion }

// Locate returns where the database places ip. It is false for addresses that cannot be
// located: private (RFC 1918, fc00::/7), loopback, link-local, unspecified, multicast,
// shared CGNAT space (100.64.0.0/10), and public addresses the database does not know.
// IPv4-mapped IPv6 addresses are located as IPv4.
func (l *Locator) Locate(ip netip.Addr) (Location, bool) {
	e := l.lookup(ip)
	return e.loc, e.ok
}

// Order returns every known region, nearest first for the client at ip, and the client's
// country ("" when unknown). The slice is shared by every client of the same location and
// must not be modified. The first region is:
//   - the country's region from Config.CountryRegions, else the continent's from
//     Config.ContinentRegions, when either names one;
//   - else the nearest to the client's coordinates;
//   - else (no coordinates, as with a Country database, and no override) NodeRegion,
//     which is also first for clients that cannot be located.
//
// The others follow by distance from the client's coordinates, or from the first region when
// the client has none. At equal distance (regions in one metro) a region of Config.Regions
// comes before a built-in one, and otherwise table order decides: built-ins as listed by
// BuiltinRegions, then added regions in config order. A cached answer does not allocate.
func (l *Locator) Order(ip netip.Addr) (regions []string, country string) {
	e := l.lookup(ip)
	return e.order, e.loc.Country
}

func (l *Locator) lookup(ip netip.Addr) *locEntry {
	ip = ip.Unmap()
	if ip.Zone() != "" {
		ip = ip.WithZone("") // a zone names an interface, which says nothing of place
	}
	if !locatable(ip) {
		l.metrics.unknown.Inc()
		return l.unknown
	}
	if e := l.state.Load().cache.get(ip); e != nil {
		l.metrics.count(e, true)
		return e
	}
	st := l.acquire()
	defer st.release()
	loc, ok, err := st.locate(ip)
	if err != nil {
		// Answer unknown rather than fail the request, but say once per database that it is
		// broken: the check at load cannot read every record.
		if st.warned.CompareAndSwap(false, true) {
			l.logger.Error("geo database lookup failed; such clients are treated as unknown", "path", l.path, "addr", ip, "error", err)
		}
		l.metrics.unknown.Inc()
		return l.unknown
	}
	e := l.unknown
	if ok {
		e = l.entryFor(loc)
	}
	// Into the cache of the reader that answered: if a reload swapped the state since the
	// lookup above began, this is the new cache and the answer is the new database's.
	st.cache.put(ip, e)
	l.metrics.count(e, false)
	return e
}

// acquire returns the current state with a reference held, so its reader stays open until
// release. A state whose last reference is gone has already been replaced, so the loop
// ends at the next load.
func (l *Locator) acquire() *dbState {
	for {
		if st := l.state.Load(); st.acquire() {
			return st
		}
	}
}

// locatable tells apart addresses a GeoIP database could place. Private and special ranges
// are refused here, not left to the database, because a custom database may well map them
// (to the office a VPN range is in), and a proxy must not route on that by accident.
func locatable(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!ip.IsMulticast() && !ip.IsUnspecified() && !isCGNAT(ip)
}

// isCGNAT reports whether ip is in 100.64.0.0/10, the carrier-grade NAT range (RFC 6598):
// such a client is behind its ISP's NAT, and the address says nothing about where.
func isCGNAT(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	a := ip.As4()
	return a[0] == 100 && a[1]&0xc0 == 64
}

// entryFor returns the shared entry of loc, computing its order on first sight.
func (l *Locator) entryFor(loc Location) *locEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.locs.Get(loc); ok {
		return e
	}
	key := l.orderKeyFor(loc)
	order, ok := l.orders.Get(key)
	switch {
	case ok:
	case key == l.nodeKey:
		order = l.nodeOrder
	default:
		order = l.computeOrder(key)
		l.orders.Add(key, order)
	}
	e := &locEntry{loc: loc, ok: true, order: order}
	l.locs.Add(loc, e)
	return e
}

func (l *Locator) orderKeyFor(loc Location) orderKey {
	first, ok := l.countryFirst[loc.Country]
	if !ok {
		if first, ok = l.continentFirst[loc.Continent]; !ok {
			first = -1
		}
	}
	switch {
	case loc.HasCoords:
		return orderKey{first: first, lat: loc.Lat, lon: loc.Lon}
	case first >= 0:
		r := l.table.regions[first]
		return orderKey{first: first, lat: r.Lat, lon: r.Lon}
	default:
		return l.nodeKey
	}
}

func (l *Locator) computeOrder(key orderKey) []string {
	type cand struct {
		dist float64
		i    int
	}
	regions := l.table.regions
	cands := make([]cand, 0, len(regions))
	for i, r := range regions {
		if i != key.first {
			cands = append(cands, cand{Distance(key.lat, key.lon, r.Lat, r.Lon), i})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := cmp.Compare(a.dist, b.dist); c != 0 {
			return c
		}
		if ca, cb := l.table.configured[a.i], l.table.configured[b.i]; ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return a.i - b.i
	})
	order := make([]string, 0, len(regions))
	if key.first >= 0 {
		order = append(order, regions[key.first].Name)
	}
	for _, c := range cands {
		order = append(order, regions[c.i].Name)
	}
	return order
}

// dbState is one loaded database with the cache of its answers. It is replaced whole on
// reload and closed when the last lookup using it is done.
type dbState struct {
	reader   *geoip2.Reader // nil once Run has ended: everyone is unknown
	ipv4Only bool           // IPv6 lookups would fail; they are unknown instead
	cache    *addrCache     // nil when caching is disabled
	logger   *slog.Logger
	// refs is 1 while the state is current, plus one per lookup in flight. Whoever brings it
	// to 0 closes the reader; after that acquire fails, so no lookup can reach a closed one.
	refs   atomic.Int64
	warned atomic.Bool // a failed lookup was logged already
}

func (l *Locator) newState(r *geoip2.Reader) *dbState {
	st := &dbState{
		reader:   r,
		ipv4Only: r != nil && r.Metadata().IPVersion == 4,
		logger:   l.logger,
	}
	if r != nil {
		st.cache = newAddrCache(l.cacheSize)
	}
	st.refs.Store(1)
	return st
}

func (s *dbState) acquire() bool {
	for {
		n := s.refs.Load()
		if n == 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *dbState) release() {
	if s.refs.Add(-1) != 0 || s.reader == nil {
		return
	}
	if err := s.reader.Close(); err != nil {
		s.logger.Warn("geo database close failed", "error", err)
	}
}

func (s *dbState) locate(ip netip.Addr) (Location, bool, error) {
	if s.reader == nil || s.ipv4Only && ip.Is6() {
		return Location{}, false, nil
	}
	rec, err := s.reader.City(ip)
	if err != nil {
		return Location{}, false, err
	}
	loc := Location{Country: rec.Country.ISOCode, Continent: rec.Continent.Code}
	if loc.Country == "" {
		// Some networks (anycast, satellite, EU-wide blocks) carry only the country they are
		// registered in; it is a better guess than none.
		loc.Country = rec.RegisteredCountry.ISOCode
	}
	if rec.Location.HasCoordinates() {
		loc.Lat, loc.Lon, loc.HasCoords = *rec.Location.Latitude, *rec.Location.Longitude, true
	}
	return loc, loc.Country != "" || loc.Continent != "" || loc.HasCoords, nil
}

// openDatabase opens path and proves it answers before anyone relies on it.
func openDatabase(path string) (*geoip2.Reader, error) {
	r, err := geoip2.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One lookup walks the search tree and decodes a record: it catches a truncated or
	// garbled file and a database of another kind (ASN, ...) that has no locations.
	probe := netip.AddrFrom4([4]byte{8, 8, 8, 8})
	if _, err := r.City(probe); err != nil {
		return nil, errors.Join(fmt.Errorf("database %s: test lookup of %s: %w", path, probe, err), r.Close())
	}
	return r, nil
}
