package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire limits. They keep one encoded entry (at most MaxEntryBytes) inside a single gossip UDP
// packet, so every change can travel as one broadcast.
const (
	MaxKeyBytes   = 256
	MaxValueBytes = 512
	MaxNodeBytes  = 128

	// FormatVersion is the first byte of every encoded entry and state. A node that meets another
	// version refuses the message (ErrVersion) instead of guessing at its layout.
	FormatVersion = 1

	// entryHeaderBytes: version, kind, flags, wall (8), logical (4), expires (8).
	entryHeaderBytes = 1 + 1 + 1 + 8 + 4 + 8
	// minEntryBytes is the smallest valid encoding: header, 1-byte key, empty value, 1-byte node.
	minEntryBytes = entryHeaderBytes + 2 + 1 + 2 + 1 + 1
	// MaxEntryBytes is the largest encoded entry: header, three length prefixes, full fields.
	MaxEntryBytes = entryHeaderBytes + 2 + MaxKeyBytes + 2 + MaxValueBytes + 1 + MaxNodeBytes
	// stateHeaderBytes: version, entry count (4).
	stateHeaderBytes = 1 + 4
)

// flagDeleted marks a tombstone; other flag bits are reserved and must be zero, so that every
// accepted encoding re-encodes to the same bytes.
const flagDeleted = 1

// Decoding errors. Each decode failure wraps exactly one of them so receivers can count by cause.
var (
	// ErrMalformed: truncated, trailing bytes, reserved bits set, or fields that break an Entry rule.
	ErrMalformed = errors.New("gossip: malformed message")
	// ErrVersion: the first byte is not FormatVersion.
	ErrVersion = errors.New("gossip: unknown message format version")
	// ErrTooLarge: a field exceeds its cap.
	ErrTooLarge = errors.New("gossip: message field too large")
)

// AppendEntry appends the version-1 encoding of e to dst:
//
//	version u8 | kind u8 | flags u8 | wall i64 | logical u32 | expires i64 |
//	keyLen u16 | key | valueLen u16 | value | nodeLen u8 | node
//
// integers big-endian. It refuses entries that the decoder would refuse, so nothing it emits is
// dropped by a peer.
func AppendEntry(dst []byte, e Entry) ([]byte, error) {
	if err := e.validate(); err != nil {
		if len(e.Key) > MaxKeyBytes || len(e.Value) > MaxValueBytes || len(e.Node) > MaxNodeBytes {
			return dst, fmt.Errorf("gossip: encode entry: %w: %w", ErrTooLarge, err)
		}
		return dst, fmt.Errorf("gossip: encode entry: %w", err)
	}
	var flags byte
	if e.Deleted {
		flags |= flagDeleted
	}
	dst = append(dst, FormatVersion, byte(e.Kind), flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Stamp.WallNanos))
	dst = binary.BigEndian.AppendUint32(dst, e.Stamp.Logical)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Expires))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Key)))
	dst = append(dst, e.Key...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Value)))
	dst = append(dst, e.Value...)
	dst = append(dst, byte(len(e.Node)))
	dst = append(dst, e.Node...)
	return dst, nil
}

// DecodeEntry decodes one entry from the front of b and returns it with the number of bytes it
// used. The entry owns its memory: b may be reused afterwards.
func DecodeEntry(b []byte) (Entry, int, error) {
	r := reader{b: b}
	if len(b) == 0 {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: empty", ErrMalformed)
	}
	if v := r.u8(); v != FormatVersion {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: %d", ErrVersion, v)
	}
	var e Entry
	e.Kind = Kind(r.u8())
	flags := r.u8()
	e.Stamp.WallNanos = int64(r.u64())
	e.Stamp.Logical = r.u32()
	e.Expires = int64(r.u64())
	keyLen := int(r.u16())
	if keyLen > MaxKeyBytes {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: key is %d bytes, max %d", ErrTooLarge, keyLen, MaxKeyBytes)
	}
	e.Key = string(r.bytes(keyLen))
	valueLen := int(r.u16())
	if valueLen > MaxValueBytes {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: value is %d bytes, max %d", ErrTooLarge, valueLen, MaxValueBytes)
	}
	if v := r.bytes(valueLen); len(v) > 0 {
		e.Value = append([]byte(nil), v...)
	}
	nodeLen := int(r.u8())
	if nodeLen > MaxNodeBytes {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: node is %d bytes, max %d", ErrTooLarge, nodeLen, MaxNodeBytes)
	}
	e.Node = string(r.bytes(nodeLen))
	if r.short {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: truncated at %d of %d bytes", ErrMalformed, r.off, len(b))
	}
	if flags&^flagDeleted != 0 {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: reserved flags %#x", ErrMalformed, flags)
	}
	e.Deleted = flags&flagDeleted != 0
	if err := e.validate(); err != nil {
		return Entry{}, 0, fmt.Errorf("gossip: decode entry: %w: %w", ErrMalformed, err)
	}
	return e, r.off, nil
}

// EncodeState encodes entries as one full-state message of at most maxBytes:
//
//	version u8 | count u32 | count encoded entries
//
// Entries are taken in order until the next would not fit; truncated reports that some were left
// out (also when an entry cannot be encoded, which a Store never holds). Callers order entries by
// importance, as Store.Snapshot does. maxBytes below the 5-byte header yields nil.
func EncodeState(entries []Entry, maxBytes int) ([]byte, bool) {
	if maxBytes < stateHeaderBytes {
		return nil, len(entries) > 0
	}
	out := make([]byte, stateHeaderBytes, min(maxBytes, stateHeaderBytes+len(entries)*128))
	out[0] = FormatVersion
	var count uint32
	truncated := false
	for _, e := range entries {
		next, err := AppendEntry(out, e)
		if err != nil {
			truncated = true
			continue
		}
		if len(next) > maxBytes {
			out = next[:len(out)] // drop the partial append
			truncated = true
			break
		}
		out = next
		count++
	}
	binary.BigEndian.PutUint32(out[1:stateHeaderBytes], count)
	return out, truncated
}

// DecodeState decodes a full-state message. It refuses the whole message on the first bad entry:
// a peer that sends one is broken or hostile, and a partial merge would hide that.
func DecodeState(b []byte) ([]Entry, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("gossip: decode state: %w: empty", ErrMalformed)
	}
	if b[0] != FormatVersion {
		return nil, fmt.Errorf("gossip: decode state: %w: %d", ErrVersion, b[0])
	}
	if len(b) < stateHeaderBytes {
		return nil, fmt.Errorf("gossip: decode state: %w: truncated header", ErrMalformed)
	}
	count := binary.BigEndian.Uint32(b[1:stateHeaderBytes])
	rest := b[stateHeaderBytes:]
	// A count the remaining bytes cannot hold is refused before allocating for it.
	if uint64(count) > uint64(len(rest)/minEntryBytes) {
		return nil, fmt.Errorf("gossip: decode state: %w: %d entries cannot fit in %d bytes", ErrMalformed, count, len(rest))
	}
	entries := make([]Entry, 0, count)
	for i := range count {
		e, n, err := DecodeEntry(rest)
		if err != nil {
			return nil, fmt.Errorf("gossip: decode state: entry %d: %w", i, err)
		}
		entries = append(entries, e)
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("gossip: decode state: %w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return entries, nil
}

// reader reads big-endian fields and remembers running short instead of panicking, so the decoder
// checks once at the end.
type reader struct {
	b     []byte
	off   int
	short bool
}

func (r *reader) bytes(n int) []byte {
	if r.short || len(r.b)-r.off < n {
		r.short = true
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
