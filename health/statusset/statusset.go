package statusset

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Lowest and highest status codes a Set can hold: the three-digit codes HTTP defines
// classes for (RFC 9110 section 15).
const (
	Lowest  = 100
	Highest = 599
)

// Default is what an empty expect_status means: any 2xx or 3xx answer passes, as it did
// before the key existed.
const Default = "200-399"

// Set is a set of status codes in Lowest..Highest, one bit per code. It is a comparable
// value, so a target holding one can be compared with ==; the zero Set is empty.
type Set [(Highest - Lowest + 64) / 64]uint64

// Parse reads a comma-separated list of codes and inclusive ranges ("200-299,301"). Spaces
// around items are ignored. Every code must be in Lowest..Highest and every range must not
// run backwards; errors quote the offending item.
func Parse(s string) (Set, error) {
	var set Set
	if strings.TrimSpace(s) == "" {
		return set, errors.New("empty: list codes or ranges such as \"200-399\"")
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return Set{}, fmt.Errorf("%q: empty item between commas", s)
		}
		loText, hiText, isRange := strings.Cut(item, "-")
		lo, err := parseCode(strings.TrimSpace(loText), isRange)
		if err != nil {
			return Set{}, fmt.Errorf("%q: %w", item, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseCode(strings.TrimSpace(hiText), isRange); err != nil {
				return Set{}, fmt.Errorf("%q: %w", item, err)
			}
			if hi < lo {
				return Set{}, fmt.Errorf("%q: range runs backwards", item)
			}
		}
		for code := lo; code <= hi; code++ {
			set.add(code)
		}
	}
	return set, nil
}

// parseCode reads one status code; only plain digits, so "+200" or "2e2" are refused. In a
// range the message names which end is wrong; alone, the caller's quote of the item does.
func parseCode(s string, inRange bool) (int, error) {
	if s == "" || len(s) > 3 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		switch {
		case s == "":
			return 0, errors.New("missing status code")
		case inRange:
			return 0, fmt.Errorf("%q is not a status code", s)
		}
		return 0, errors.New("not a status code")
	}
	n, _ := strconv.Atoi(s)
	if n < Lowest || n > Highest {
		return 0, fmt.Errorf("status %d out of range %d-%d", n, Lowest, Highest)
	}
	return n, nil
}

func (s *Set) add(code int) {
	i := code - Lowest
	s[i/64] |= 1 << (i % 64)
}

// Contains reports whether code is in s. Codes outside Lowest..Highest never are.
func (s Set) Contains(code int) bool {
	if code < Lowest || code > Highest {
		return false
	}
	i := code - Lowest
	return s[i/64]&(1<<(i%64)) != 0
}

// String is the canonical form of s: ascending, with adjacent codes merged into ranges, so
// that Parse(s.String()) == s and two spellings of one set print alike. The empty Set
// prints as "".
func (s Set) String() string {
	var b strings.Builder
	for code := Lowest; code <= Highest; code++ {
		if !s.Contains(code) {
			continue
		}
		end := code
		for end < Highest && s.Contains(end+1) {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(code))
		if end > code {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(end))
		}
		code = end
	}
	return b.String()
}
