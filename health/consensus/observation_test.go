package consensus

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/veloflux/veloflux/gossip"
)

func TestObservationRoundTrip(t *testing.T) {
	at := time.Unix(1_700_000_000, 123456789)
	tests := []struct {
		name string
		in   Observation
		want Observation // what decodes; equal to in unless encoding normalises
	}{
		{"active up", Observation{Source: SourceActive, Healthy: true, LastProbeOK: true, At: at},
			Observation{Source: SourceActive, Healthy: true, LastProbeOK: true, At: at}},
		{"active down with reason", Observation{Source: SourceActive, Reason: "status 503", At: at},
			Observation{Source: SourceActive, Reason: "status 503", At: at}},
		{"down but last probe ok", Observation{Source: SourceActive, LastProbeOK: true, Reason: "timeout", At: at},
			Observation{Source: SourceActive, LastProbeOK: true, Reason: "timeout", At: at}},
		{"passive ejection", Observation{Source: SourcePassive, Reason: "5 errors in 10s", At: at},
			Observation{Source: SourcePassive, Reason: "5 errors in 10s", At: at}},
		{"zero time", Observation{Source: SourceActive, Healthy: true},
			Observation{Source: SourceActive, Healthy: true}},
		{"long reason truncated", Observation{Source: SourceActive, Reason: strings.Repeat("x", 500), At: at},
			Observation{Source: SourceActive, Reason: strings.Repeat("x", maxObservationReason), At: at}},
		{"truncation keeps runes whole", Observation{Source: SourceActive, Reason: strings.Repeat("é", 150), At: at},
			Observation{Source: SourceActive, Reason: strings.Repeat("é", maxObservationReason/2), At: at}},
		{"invalid UTF-8 replaced", Observation{Source: SourceActive, Reason: "bad \xff byte", At: at},
			Observation{Source: SourceActive, Reason: "bad ? byte", At: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeObservation(tt.in)
			got, err := decodeObservation(b)
			if err != nil {
				t.Fatalf("decode(encode(%+v)): %v", tt.in, err)
			}
			if !got.At.Equal(tt.want.At) {
				t.Fatalf("At = %v, want %v", got.At, tt.want.At)
			}
			got.At, tt.want.At = time.Time{}, time.Time{}
			if got != tt.want {
				t.Fatalf("decoded %+v, want %+v", got, tt.want)
			}
			if len(b) > gossip.MaxValueBytes {
				t.Fatalf("encoding is %d bytes, over the entry value limit %d", len(b), gossip.MaxValueBytes)
			}
		})
	}
}

func TestDecodeObservationRejects(t *testing.T) {
	valid := encodeObservation(Observation{Source: SourceActive, Reason: "timeout", At: time.Unix(10, 0)})
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"header only", valid[:observationHeader]},
		{"unknown version", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"unknown source", mutate(func(b []byte) []byte { b[1] = 3; return b })},
		{"zero source", mutate(func(b []byte) []byte { b[1] = 0; return b })},
		{"reserved flag", mutate(func(b []byte) []byte { b[2] |= 0x80; return b })},
		{"negative time", mutate(func(b []byte) []byte { b[3] = 0x80; return b })},
		{"reason cut short", valid[:len(valid)-1]},
		{"trailing byte", append(bytes.Clone(valid), 'x')},
		{"reason over the cap", func() []byte {
			b := bytes.Clone(valid[:observationHeader])
			b = append(b, 0xC9, 0x01) // 201
			return append(b, strings.Repeat("x", 201)...)
		}()},
		{"non-minimal length", func() []byte {
			b := bytes.Clone(valid[:observationHeader])
			return append(b, 0x80, 0x00)
		}()},
		{"unterminated length", append(bytes.Clone(valid[:observationHeader]), 0x80)},
		{"reason not UTF-8", func() []byte {
			b := bytes.Clone(valid[:observationHeader])
			return append(b, 1, 0xff)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := decodeObservation(tt.in)
			if !errors.Is(err, errBadObservation) {
				t.Fatalf("decode(%x) = %+v, %v; want errBadObservation", tt.in, o, err)
			}
		})
	}
}

func TestObservationKeys(t *testing.T) {
	long := strings.Repeat("b", maxRawIDBytes+1)
	node := strings.Repeat("n", gossip.MaxNodeBytes)
	tests := []struct {
		name     string
		id       string
		node     string
		src      Source
		wantPart string // "" = hashed
	}{
		{"plain", "pool-a/10.0.0.1:80", "node-a", SourceActive, "pool-a/10.0.0.1:80"},
		{"passive", "b1", "node-a", SourcePassive, "b1"},
		{"id with the separator", "b@x", "node@a", SourceActive, "b@x"},
		{"longest raw id, longest node", strings.Repeat("b", maxRawIDBytes), node, SourceActive, strings.Repeat("b", maxRawIDBytes)},
		{"long id hashed", long, node, SourceActive, ""},
		{"id looking hashed is hashed", "sha256:abc", "node-a", SourceActive, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			part := backendKeyPart(tt.id)
			if tt.wantPart != "" && part != tt.wantPart {
				t.Fatalf("part = %q, want %q", part, tt.wantPart)
			}
			if tt.wantPart == "" && (!strings.HasPrefix(part, hashedIDPrefix) || part == tt.id) {
				t.Fatalf("part = %q, want a digest", part)
			}
			key := observationKey(tt.src, part, tt.node)
			if len(key) > gossip.MaxKeyBytes {
				t.Fatalf("key is %d bytes, over %d", len(key), gossip.MaxKeyBytes)
			}
			src, gotPart, ok := parseObservationKey(key, tt.node)
			if !ok || src != tt.src || gotPart != part {
				t.Fatalf("parse(%q) = %v %q %t, want %v %q", key, src, gotPart, ok, tt.src, part)
			}
			if _, _, ok := parseObservationKey(key, tt.node+"x"); ok {
				t.Fatalf("key %q parsed as written by another node", key)
			}
		})
	}
}

func TestDecodeObservationEntry(t *testing.T) {
	value := encodeObservation(Observation{Source: SourceActive, Healthy: true, At: time.Unix(5, 0)})
	passive := encodeObservation(Observation{Source: SourcePassive, At: time.Unix(5, 0)})
	tests := []struct {
		name    string
		e       gossip.Entry
		wantErr bool
	}{
		{"valid", gossip.Entry{Key: "a:b1@n1", Node: "n1", Value: value}, false},
		{"key names another observer", gossip.Entry{Key: "a:b1@n2", Node: "n1", Value: value}, true},
		{"unknown key prefix", gossip.Entry{Key: "x:b1@n1", Node: "n1", Value: value}, true},
		{"empty backend", gossip.Entry{Key: "a:@n1", Node: "n1", Value: value}, true},
		{"key says active, value passive", gossip.Entry{Key: "a:b1@n1", Node: "n1", Value: passive}, true},
		{"garbage value", gossip.Entry{Key: "a:b1@n1", Node: "n1", Value: []byte("junk")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.e.Kind = gossip.KindHealth
			part, _, err := decodeObservationEntry(tt.e)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if err == nil && part != "b1" {
				t.Fatalf("part = %q, want b1", part)
			}
		})
	}
}

// FuzzDecodeObservation: no input panics, and whatever decodes re-encodes to the same bytes,
// so two nodes never disagree about what an accepted value says.
func FuzzDecodeObservation(f *testing.F) {
	f.Add(encodeObservation(Observation{Source: SourceActive, Healthy: true, LastProbeOK: true, At: time.Unix(1, 2)}))
	f.Add(encodeObservation(Observation{Source: SourcePassive, Reason: "ejected: 5 errors", At: time.Unix(1, 2)}))
	f.Add(encodeObservation(Observation{Source: SourceActive, Reason: strings.Repeat("é", 120)}))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeObservation(b)
		if err != nil {
			if !errors.Is(err, errBadObservation) {
				t.Fatalf("error %v does not wrap errBadObservation", err)
			}
			return
		}
		if !utf8.ValidString(o.Reason) || len(o.Reason) > maxObservationReason {
			t.Fatalf("accepted reason %q", o.Reason)
		}
		if again := encodeObservation(o); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x but it re-encodes to %x", b, again)
		}
	})
}
