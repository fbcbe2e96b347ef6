package consensus

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veloflux/veloflux/gossip"
)

// Source says how a node came to its observation of a backend.
type Source uint8

// Observation sources. Values are part of the wire format: never renumber.
const (
	// SourceActive is a verdict of this node's active checks (rise/fall applied). Only these vote.
	SourceActive Source = 1
	// SourcePassive is the passive layer's ejection state, shared for visibility only: what one
	// node's clients saw says little about what the others' clients see.
	SourcePassive Source = 2
)

// String names the source for the admin API and logs.
func (s Source) String() string {
	switch s {
	case SourceActive:
		return "active"
	case SourcePassive:
		return "passive"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Observation is one node's view of one backend, as gossiped in a KindHealth entry.
type Observation struct {
	Source Source
	// Healthy is the node's verdict: after rise/fall for an active observation, not ejected for
	// a passive one.
	Healthy bool
	// LastProbeOK is whether the node's latest probe succeeded; for a passive observation it
	// repeats Healthy.
	LastProbeOK bool
	// Reason is the latest failure reason ("status 503", "timeout"), kept while the backend is
	// down even if the latest probe succeeded; "" when there is nothing to say. At most
	// maxObservationReason bytes.
	Reason string
	// At is when the latest probe finished (active) or when the passive layer reported (passive).
	// A refresh re-sends the observation without changing At.
	At time.Time
}

// observationVersion leads every encoded observation so a later release can change the layout
// and older nodes refuse it (counted as invalid) instead of misreading it.
const observationVersion = 1

// maxObservationReason caps the reason carried in an observation. The probe's own reasons are
// shorter (128 bytes); the cap guards the 512-byte entry value against anything longer.
const maxObservationReason = 200

// observationHeader is version, source, flags and the 8-byte time.
const observationHeader = 1 + 1 + 1 + 8

// Observation flag bits; the others are reserved and must be zero, so every accepted encoding
// re-encodes to the same bytes.
const (
	obsFlagHealthy     = 1 << 0
	obsFlagLastProbeOK = 1 << 1
	obsFlagsKnown      = obsFlagHealthy | obsFlagLastProbeOK
)

// errBadObservation wraps every decoding failure so callers can count them as one cause.
var errBadObservation = errors.New("consensus: malformed observation")

// encodeObservation returns the version-1 encoding of o:
//
//	version u8 | source u8 | flags u8 | at i64 (Unix nanos, big-endian) | reasonLen uvarint | reason
//
// The reason is made valid UTF-8 and truncated to maxObservationReason on a rune boundary, so
// whatever the probe said, the value decodes on every peer.
func encodeObservation(o Observation) []byte {
	reason := truncateUTF8(strings.ToValidUTF8(o.Reason, "?"), maxObservationReason)
	b := make([]byte, 0, observationHeader+binary.MaxVarintLen16+len(reason))
	var flags byte
	if o.Healthy {
		flags |= obsFlagHealthy
	}
	if o.LastProbeOK {
		flags |= obsFlagLastProbeOK
	}
	var at int64
	if !o.At.IsZero() {
		at = max(o.At.UnixNano(), 0)
	}
	b = append(b, observationVersion, byte(o.Source), flags)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(reason)))
	return append(b, reason...)
}

// decodeObservation parses a peer's observation. Peers are untrusted: every field is checked and
// anything encodeObservation would not produce is refused with errBadObservation.
func decodeObservation(b []byte) (Observation, error) {
	if len(b) < observationHeader+1 {
		return Observation{}, fmt.Errorf("%w: %d bytes, too short", errBadObservation, len(b))
	}
	if b[0] != observationVersion {
		return Observation{}, fmt.Errorf("%w: unknown version %d", errBadObservation, b[0])
	}
	o := Observation{Source: Source(b[1])}
	if o.Source != SourceActive && o.Source != SourcePassive {
		return Observation{}, fmt.Errorf("%w: unknown source %d", errBadObservation, b[1])
	}
	flags := b[2]
	if flags&^obsFlagsKnown != 0 {
		return Observation{}, fmt.Errorf("%w: reserved flag bits %#x", errBadObservation, flags)
	}
	o.Healthy = flags&obsFlagHealthy != 0
	o.LastProbeOK = flags&obsFlagLastProbeOK != 0
	at := int64(binary.BigEndian.Uint64(b[3:11]))
	if at < 0 {
		return Observation{}, fmt.Errorf("%w: negative time", errBadObservation)
	}
	if at != 0 {
		o.At = time.Unix(0, at)
	}
	rest := b[observationHeader:]
	n, size := binary.Uvarint(rest)
	if size <= 0 {
		return Observation{}, fmt.Errorf("%w: bad reason length", errBadObservation)
	}
	rest = rest[size:]
	if n > maxObservationReason {
		return Observation{}, fmt.Errorf("%w: reason is %d bytes, max %d", errBadObservation, n, maxObservationReason)
	}
	if n != uint64(len(rest)) {
		return Observation{}, fmt.Errorf("%w: reason length %d, %d bytes follow", errBadObservation, n, len(rest))
	}
	// A non-minimal length prefix would decode but not re-encode to the same bytes.
	if size != uvarintLen(n) {
		return Observation{}, fmt.Errorf("%w: non-minimal reason length", errBadObservation)
	}
	if !utf8.Valid(rest) {
		return Observation{}, fmt.Errorf("%w: reason is not UTF-8", errBadObservation)
	}
	o.Reason = string(rest)
	return o, nil
}

func uvarintLen(n uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], n)
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Observation keys. An entry's key names the backend, the source and the observer, and the
// observer must be the entry's writer (Entry.Node): a node can only speak for itself, and a key
// naming someone else is refused as invalid.
//
//	a:<backend>@<node>   active observation
//	p:<backend>@<node>   passive observation
//
// <backend> is the backend ID, or "sha256:" and its hex digest when the ID is too long to leave
// room for the longest node name (or already starts with that prefix, keeping the two spaces
// apart). The choice depends on the ID alone, so every observer of a backend uses the same
// <backend> and a reader maps it back through the IDs it knows.
const (
	keyPrefixActive  = "a:"
	keyPrefixPassive = "p:"
	keyNodeSep       = "@"
	hashedIDPrefix   = "sha256:"
	// maxRawIDBytes leaves room in gossip.MaxKeyBytes for a prefix, the separator and the
	// longest node name.
	maxRawIDBytes = gossip.MaxKeyBytes - len(keyPrefixActive) - len(keyNodeSep) - gossip.MaxNodeBytes
)

// backendKeyPart is the <backend> of the observation keys for id.
func backendKeyPart(id string) string {
	if len(id) <= maxRawIDBytes && !strings.HasPrefix(id, hashedIDPrefix) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedIDPrefix + hex.EncodeToString(sum[:])
}

// observationKey is the key under which node writes its observation of the backend whose key
// part is part.
func observationKey(src Source, part, node string) string {
	prefix := keyPrefixActive
	if src == SourcePassive {
		prefix = keyPrefixPassive
	}
	return prefix + part + keyNodeSep + node
}

// parseObservationKey splits a key written by node into its source and backend part; ok is false
// for a key that does not follow the layout or names another observer.
func parseObservationKey(key, node string) (src Source, part string, ok bool) {
	switch {
	case strings.HasPrefix(key, keyPrefixActive):
		src, key = SourceActive, key[len(keyPrefixActive):]
	case strings.HasPrefix(key, keyPrefixPassive):
		src, key = SourcePassive, key[len(keyPrefixPassive):]
	default:
		return 0, "", false
	}
	part, found := strings.CutSuffix(key, keyNodeSep+node)
	if !found || part == "" {
		return 0, "", false
	}
	return src, part, true
}

// decodeObservationEntry checks a KindHealth entry end to end: its key names its writer and its
// value decodes to an observation of the source the key says.
func decodeObservationEntry(e gossip.Entry) (part string, o Observation, err error) {
	src, part, ok := parseObservationKey(e.Key, e.Node)
	if !ok {
		return "", Observation{}, fmt.Errorf("%w: key %q does not name writer %q", errBadObservation, e.Key, e.Node)
	}
	o, err = decodeObservation(e.Value)
	if err != nil {
		return "", Observation{}, fmt.Errorf("key %q from %s: %w", e.Key, e.Node, err)
	}
	if o.Source != src {
		return "", Observation{}, fmt.Errorf("%w: key %q says %s, value says %s", errBadObservation, e.Key, src, o.Source)
	}
	return part, o, nil
}
