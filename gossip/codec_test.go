package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

func sampleEntry() Entry {
	return Entry{Kind: KindSession, Key: "sess-42", Value: []byte("10.0.0.7:8080"), Node: "node-a",
		Stamp: Timestamp{WallNanos: testEpoch.UnixNano(), Logical: 3}, Expires: testEpoch.Add(time.Hour).UnixNano()}
}

func TestEntryRoundTrip(t *testing.T) {
	max := Entry{Kind: KindHealth, Key: strings.Repeat("k", MaxKeyBytes), Value: bytes.Repeat([]byte{0xff}, MaxValueBytes),
		Node: strings.Repeat("n", MaxNodeBytes), Stamp: Timestamp{WallNanos: 1<<63 - 1, Logical: 1<<32 - 1}, Expires: 1<<63 - 1}
	tests := []struct {
		name    string
		e       Entry
		wantLen int
	}{
		{"session", sampleEntry(), entryHeaderBytes + 2 + 7 + 2 + 13 + 1 + 6},
		{"tombstone", Entry{Kind: KindDrain, Key: "node-b", Node: "node-a", Deleted: true, Stamp: Timestamp{1, 0}, Expires: 9}, entryHeaderBytes + 2 + 6 + 2 + 1 + 6},
		{"empty value never expires", Entry{Kind: KindHealth, Key: "k", Node: "n"}, minEntryBytes},
		{"every field at its cap", max, MaxEntryBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b, err := AppendEntry(prefix, tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) || len(b)-len(prefix) != tt.wantLen {
				t.Fatalf("encoded %d bytes after the prefix, want %d", len(b)-len(prefix), tt.wantLen)
			}
			b = append(b, "next"...) // DecodeEntry must stop at the entry's end
			got, n, err := DecodeEntry(b[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantLen {
				t.Fatalf("consumed %d bytes, want %d", n, tt.wantLen)
			}
			if !equalEntries([]Entry{got}, []Entry{tt.e}) || got.Deleted != tt.e.Deleted {
				t.Fatalf("decoded %+v, want %+v", got, tt.e)
			}
			if len(got.Value) > 0 {
				b[len(prefix)+entryHeaderBytes+2+len(tt.e.Key)+2] ^= 0xff
				if !bytes.Equal(got.Value, tt.e.Value) {
					t.Fatal("decoded value aliases the input buffer")
				}
			}
		})
	}
}

// encoded returns the encoding of sampleEntry with edit applied to its bytes.
func encoded(t *testing.T, edit func([]byte) []byte) []byte {
	t.Helper()
	b, err := AppendEntry(nil, sampleEntry())
	if err != nil {
		t.Fatal(err)
	}
	return edit(b)
}

func TestDecodeEntryErrors(t *testing.T) {
	keyLenAt := entryHeaderBytes
	valueLenAt := keyLenAt + 2 + len(sampleEntry().Key)
	nodeLenAt := valueLenAt + 2 + len(sampleEntry().Value)
	setU16 := func(at int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[at:], v); return b }
	}
	setByte := func(at int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[at] = v; return b }
	}
	tests := []struct {
		name  string
		input func(t *testing.T) []byte
		want  []error
	}{
		{"empty", func(*testing.T) []byte { return nil }, []error{ErrMalformed}},
		{"version 0", func(t *testing.T) []byte { return encoded(t, setByte(0, 0)) }, []error{ErrVersion}},
		{"version 2", func(t *testing.T) []byte { return encoded(t, setByte(0, 2)) }, []error{ErrVersion}},
		{"kind 0", func(t *testing.T) []byte { return encoded(t, setByte(1, 0)) }, []error{ErrMalformed, ErrUnknownKind}},
		{"kind 4", func(t *testing.T) []byte { return encoded(t, setByte(1, 4)) }, []error{ErrMalformed, ErrUnknownKind}},
		{"reserved flag", func(t *testing.T) []byte { return encoded(t, setByte(2, 2)) }, []error{ErrMalformed}},
		{"tombstone with value", func(t *testing.T) []byte { return encoded(t, setByte(2, flagDeleted)) }, []error{ErrMalformed}},
		{"negative wall", func(t *testing.T) []byte { return encoded(t, setByte(3, 0x80)) }, []error{ErrMalformed}},
		{"key too large", func(t *testing.T) []byte { return encoded(t, setU16(keyLenAt, MaxKeyBytes+1)) }, []error{ErrTooLarge}},
		{"value too large", func(t *testing.T) []byte { return encoded(t, setU16(valueLenAt, MaxValueBytes+1)) }, []error{ErrTooLarge}},
		{"node too large", func(t *testing.T) []byte { return encoded(t, setByte(nodeLenAt, MaxNodeBytes+1)) }, []error{ErrTooLarge}},
		{"empty key", func(t *testing.T) []byte {
			b, err := AppendEntry(nil, Entry{Kind: KindSession, Key: "x", Node: "n"})
			if err != nil {
				t.Fatal(err)
			}
			// Drop the key byte and zero its length: structurally sound, semantically invalid.
			b = append(b[:keyLenAt], append([]byte{0, 0}, b[keyLenAt+3:]...)...)
			return b
		}, []error{ErrMalformed, ErrInvalidEntry}},
		{"key length past the end", func(t *testing.T) []byte { return encoded(t, setU16(keyLenAt, 200)) }, []error{ErrMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, n, err := DecodeEntry(tt.input(t))
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Fatalf("DecodeEntry error %v, want %v", err, w)
				}
			}
			if n != 0 || e.Key != "" {
				t.Fatalf("failed decode returned %+v, %d", e, n)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		full := encoded(t, func(b []byte) []byte { return b })
		for cut := range len(full) {
			if _, _, err := DecodeEntry(full[:cut]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated to %d of %d bytes: %v, want ErrMalformed", cut, len(full), err)
			}
		}
	})
}

func TestAppendEntryRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Entry)
		want error
	}{
		{"key over cap", func(e *Entry) { e.Key = strings.Repeat("k", MaxKeyBytes+1) }, ErrTooLarge},
		{"value over cap", func(e *Entry) { e.Value = make([]byte, MaxValueBytes+1) }, ErrTooLarge},
		{"node over cap", func(e *Entry) { e.Node = strings.Repeat("n", MaxNodeBytes+1) }, ErrTooLarge},
		{"unknown kind", func(e *Entry) { e.Kind = 9 }, ErrUnknownKind},
		{"empty key", func(e *Entry) { e.Key = "" }, ErrInvalidEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEntry()
			tt.edit(&e)
			dst := []byte("keep")
			out, err := AppendEntry(dst, e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("AppendEntry error %v, want %v", err, tt.want)
			}
			if string(out) != "keep" {
				t.Fatalf("refused entry still appended bytes: %q", out)
			}
		})
	}
}

func TestEncodeState(t *testing.T) {
	entries := make([]Entry, 10)
	for i := range entries {
		entries[i] = sampleEntry()
		entries[i].Key = fmt.Sprintf("sess-%d", i)
	}
	one, err := AppendEntry(nil, entries[0])
	if err != nil {
		t.Fatal(err)
	}
	size := len(one) // every sample entry encodes to the same size
	bad := sampleEntry()
	bad.Kind = 0
	tests := []struct {
		name          string
		entries       []Entry
		maxBytes      int
		wantCount     int
		wantTruncated bool
	}{
		{"all fit", entries, 1 << 16, 10, false},
		{"exact fit", entries, stateHeaderBytes + 10*size, 10, false},
		{"one byte short", entries, stateHeaderBytes + 10*size - 1, 9, true},
		{"three fit", entries, stateHeaderBytes + 3*size + size/2, 3, true},
		{"only the header", entries, stateHeaderBytes, 0, true},
		{"empty state", nil, 100, 0, false},
		{"unencodable entry is skipped and reported", []Entry{entries[0], bad, entries[1]}, 1 << 16, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, truncated := EncodeState(tt.entries, tt.maxBytes)
			if len(b) > tt.maxBytes {
				t.Fatalf("state is %d bytes, cap %d", len(b), tt.maxBytes)
			}
			if truncated != tt.wantTruncated {
				t.Fatalf("truncated = %v, want %v", truncated, tt.wantTruncated)
			}
			got, err := DecodeState(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.wantCount {
				t.Fatalf("decoded %d entries, want %d", len(got), tt.wantCount)
			}
			var encodable []Entry
			for _, e := range tt.entries {
				if e.Kind.Valid() {
					encodable = append(encodable, e)
				}
			}
			for i, e := range got {
				if e.Key != encodable[i].Key {
					t.Fatalf("entry %d is %q, want %q: order not kept", i, e.Key, encodable[i].Key)
				}
			}
		})
	}
	t.Run("cap below the header", func(t *testing.T) {
		if b, truncated := EncodeState(entries, stateHeaderBytes-1); b != nil || !truncated {
			t.Fatalf("got %v, %v; want nil, true", b, truncated)
		}
	})
}

func TestDecodeStateErrors(t *testing.T) {
	valid, _ := EncodeState([]Entry{sampleEntry()}, 1<<10)
	withCount := func(n uint32) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint32(b[1:], n)
		return b
	}
	badEntry := bytes.Clone(valid)
	badEntry[stateHeaderBytes+1] = 0 // kind 0 inside the first entry
	tests := []struct {
		name  string
		input []byte
		want  []error
	}{
		{"empty", nil, []error{ErrMalformed}},
		{"wrong version", append([]byte{9}, valid[1:]...), []error{ErrVersion}},
		{"short header", valid[:3], []error{ErrMalformed}},
		{"count beyond the bytes", withCount(1 << 31), []error{ErrMalformed}},
		{"count one too many", withCount(2), []error{ErrMalformed}},
		{"trailing bytes", append(bytes.Clone(valid), 0), []error{ErrMalformed}},
		{"count zero with an entry", withCount(0), []error{ErrMalformed}},
		{"bad entry inside", badEntry, []error{ErrMalformed, ErrUnknownKind}},
		{"entry with another version inside", func() []byte { b := bytes.Clone(valid); b[stateHeaderBytes] = 7; return b }(), []error{ErrVersion}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeState(tt.input)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Fatalf("DecodeState error %v, want %v", err, w)
				}
			}
			if got != nil {
				t.Fatalf("failed decode returned %d entries", len(got))
			}
		})
	}
}

// isDecodeError reports whether err is one of the documented decode errors.
func isDecodeError(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrVersion) || errors.Is(err, ErrTooLarge)
}

func FuzzDecodeEntry(f *testing.F) {
	seed, _ := AppendEntry(nil, sampleEntry())
	f.Add(seed)
	tomb, _ := AppendEntry(nil, Entry{Kind: KindDrain, Key: "n", Node: "a", Deleted: true, Expires: 5})
	f.Add(tomb)
	f.Add([]byte{})
	f.Add([]byte{FormatVersion})
	f.Add(append(bytes.Clone(seed), seed...))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := DecodeEntry(b)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		again, err := AppendEntry(nil, e)
		if err != nil {
			t.Fatalf("decoded entry does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("round trip changed bytes:\n%x\n%x", b[:n], again)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	e2 := sampleEntry()
	e2.Kind, e2.Key, e2.Deleted, e2.Value = KindDrain, "node-z", true, nil
	seed, _ := EncodeState([]Entry{sampleEntry(), e2}, 1<<10)
	f.Add(seed)
	empty, _ := EncodeState(nil, 100)
	f.Add(empty)
	f.Add([]byte{FormatVersion, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeState(b)
		if err != nil {
			if !isDecodeError(err) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		again, truncated := EncodeState(entries, len(b))
		if truncated || !bytes.Equal(again, b) {
			t.Fatalf("round trip changed bytes (truncated %v):\n%x\n%x", truncated, b, again)
		}
	})
}

func BenchmarkAppendEntry(b *testing.B) {
	e := sampleEntry()
	buf := make([]byte, 0, MaxEntryBytes)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEntry(buf[:0], e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	msg, _ := AppendEntry(nil, sampleEntry())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeEntry(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreMergeDelta(b *testing.B) {
	ft := testutil.NewClock(testEpoch)
	s := newTestStore(b, "a", ft, nil)
	msgs := make([][]byte, 1024)
	for i := range msgs {
		e := sampleEntry()
		e.Key = fmt.Sprintf("sess-%d", i)
		e.Stamp.Logical = uint32(i)
		msgs[i], _ = AppendEntry(nil, e)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.MergeDelta(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
