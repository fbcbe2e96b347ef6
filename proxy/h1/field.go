package h1

import "net/textproto"

// ValidFieldValue reports whether v may be sent as a field value: no control byte but tab,
// no DEL; bytes from 0x80 up pass (obs-text). Its answers are httpguts.ValidHeaderFieldValue's;
// it tests eight bytes at a time, where that one takes a byte per step, since the fast client
// and server check every field they write.
func ValidFieldValue(v string) bool {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := v[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// A byte under 0x20 sets its high bit in (x - 0x20 each) &^ x, and so does a 0x7f
		// in y = x ^ 0x7f each, which makes it 0 (the tests of "Bit Twiddling Hacks",
		// exact as to whether any byte matches). Only then is a tab possible: look closer.
		y := x ^ 0x7f*ones
		if ((x-0x20*ones)&^x|(y-ones)&^y)&high != 0 && !validFieldBytes(v[i:i+8]) {
			return false
		}
	}
	return validFieldBytes(v[i:])
}

func validFieldBytes(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// CanonicalKey is http.CanonicalHeaderKey(k), without its work for a key that is canonical
// already, as nearly every field of a backend's answer and a client's request is: the
// fast client and server canonicalise every key they read.
func CanonicalKey(k string) string {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
		upper = c == '-'
	}
	return k
}

// TrimOWS is strings.Trim(v, " \t"): a field value less the optional white space around it.
func TrimOWS(v string) string {
	i, j := 0, len(v)
	for i < j && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t') {
		j--
	}
	return v[i:j]
}
