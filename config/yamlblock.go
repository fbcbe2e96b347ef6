package config

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/veloflux/veloflux/internal/pace"
)

// blockTree returns the value yaml.v3 decodes b into when given an `any` (every mapping's
// keys as strings) for the YAML that configuration files are written in: printable ASCII
// text, indented with spaces, of block mappings whose keys are plain or quoted text, block
// lists, and scalars on one line each (plain, 'single' or "double" quoted with the usual
// escapes), with comments anywhere. It reports false for anything else (flow collections
// such as [a, b], multi-line and block scalars, anchors, aliases, tags, document markers,
// tabs, duplicate keys, keys that are not text, and every error), and the caller parses the
// document with yaml.v3, which gives that case its exact value or error.
//
// It exists for speed: yaml.v3's scanner and node tree were half of a reload of 10,000
// backends. Plain scalars whose first character could make them anything but text are typed
// by yaml.v3 itself, as simpleScalar does, so numbers and booleans read exactly as before;
// FuzzBlockTree holds the two paths equal.
func blockTree(b []byte, pc *pace.Pacer) (any, bool) {
	if len(b) == 0 {
		return nil, false
	}
	for _, c := range b {
		if (c < 0x20 && c != '\n') || c >= 0x7f {
			return nil, false // tabs, carriage returns, control characters, anything not ASCII
		}
	}
	// Keys and values are copied out of the file's text, so that what the configuration
	// keeps does not hold on to the whole file.
	p := &blockParser{src: string(b), keys: make(map[string]string), pace: pc}
	p.advance()
	if !p.has || p.bad {
		return nil, false // nothing but comments, or a document marker: yaml.v3's
	}
	v, ok := p.block()
	if !ok || p.has || p.bad {
		return nil, false
	}
	return v, true
}

// blockParser reads b line by line; the line under it (cur) is a content line: neither
// blank nor a comment.
type blockParser struct {
	src  string
	pos  int // start of the line after cur
	cur  blockLine
	has  bool              // cur is a line; false at the end
	bad  bool              // a line outside the subset was met
	keys map[string]string // each key's copy, made once
	pace *pace.Pacer
}

type blockLine struct {
	indent int    // leading spaces
	text   string // the rest, comment included
}

// advance moves to the next content line.
func (p *blockParser) advance() {
	for p.pos < len(p.src) {
		line := p.src[p.pos:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			p.pos += i + 1
		} else {
			p.pos = len(p.src)
		}
		n := 0
		for n < len(line) && line[n] == ' ' {
			n++
		}
		text := line[n:]
		if text == "" || text[0] == '#' {
			continue
		}
		if n == 0 && (strings.HasPrefix(text, "---") || strings.HasPrefix(text, "...") || text[0] == '%') {
			p.bad = true // a document marker or a directive
		}
		p.cur, p.has = blockLine{n, text}, true
		return
	}
	p.has = false
}

// isEntry reports whether text starts a list entry: "-" alone or followed by a space.
func isEntry(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ")
}

// block parses the node that starts at the current line: a list, a mapping, or a scalar
// alone on its line. It returns at the first line indented less than the node, or that
// cannot be part of it; the caller checks where that line may go.
func (p *blockParser) block() (any, bool) {
	if isEntry(p.cur.text) {
		return p.sequence(p.cur.indent)
	}
	if _, _, ok := splitKey(p.cur.text); ok {
		return p.mapping(p.cur.indent)
	}
	v, ok := inlineScalar(p.cur.text)
	p.advance()
	return v, ok
}

// mapping parses the mapping whose entries are the lines at column col, starting at cur.
func (p *blockParser) mapping(col int) (any, bool) {
	m := make(map[string]any)
	for p.has && p.cur.indent == col && !p.bad {
		key, rest, ok := splitKey(p.cur.text)
		if !ok {
			return nil, false
		}
		if _, dup := m[key]; dup {
			return nil, false // yaml.v3 reports it, with both lines
		}
		k, seen := p.keys[key]
		if !seen {
			k = strings.Clone(key)
			p.keys[k] = k
		}
		v, ok := p.value(col, rest, true)
		if !ok {
			return nil, false
		}
		m[k] = v
	}
	if p.has && p.cur.indent > col {
		return nil, false
	}
	return m, true
}

// sequence parses the list whose entries are the lines at column col starting with "-".
func (p *blockParser) sequence(col int) (any, bool) {
	var out []any
	for p.has && p.cur.indent == col && isEntry(p.cur.text) && !p.bad {
		p.pace.Step()
		rest := p.cur.text[1:]
		sp := 0
		for sp < len(rest) && rest[sp] == ' ' {
			sp++
		}
		content := rest[sp:]
		var v any
		var ok bool
		switch {
		case content == "" || content[0] == '#':
			v, ok = p.value(col, "", false)
		case isEntry(content):
			return nil, false // a list in a list on one line
		default:
			if _, _, isKey := splitKey(content); isKey {
				// The entry is a mapping whose first key stands after the "- ": its other
				// keys are the lines at that key's column.
				inner := col + 1 + sp
				p.cur = blockLine{inner, content}
				if v, ok = p.mapping(inner); ok && p.has && p.cur.indent > col {
					ok = false
				}
			} else {
				v, ok = p.value(col, content, false)
			}
		}
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// value parses the value of a mapping key or list entry at column col whose text after the
// ": " or "- " is rest: a scalar on the line, else a node on the lines below, indented
// more (or, for a mapping key, a list at the key's own column), else null.
func (p *blockParser) value(col int, rest string, inMapping bool) (any, bool) {
	rest = strings.TrimLeft(rest, " ")
	if rest != "" && rest[0] != '#' {
		v, ok := inlineScalar(rest)
		p.advance()
		return v, ok && !(p.has && p.cur.indent > col) // more indented: a multi-line scalar
	}
	p.advance()
	switch {
	case !p.has || p.bad:
		return nil, true
	case p.cur.indent > col:
		v, ok := p.block()
		return v, ok && !(p.has && p.cur.indent > col)
	case inMapping && p.cur.indent == col && isEntry(p.cur.text):
		return p.sequence(col)
	}
	return nil, true
}

// splitKey splits a mapping entry's line into its key and what follows the ": ". It reports
// false for a line that is not a "key: " or "key:" line, or whose key is not text as
// blockTree takes it.
func splitKey(text string) (key, rest string, ok bool) {
	if text[0] == '"' || text[0] == '\'' {
		k, n, ok := quoted(text)
		if !ok {
			return "", "", false
		}
		after := strings.TrimLeft(text[n:], " ")
		if after == "" || after[0] != ':' || (len(after) > 1 && after[1] != ' ') {
			return "", "", false
		}
		return k, after[1:], true
	}
	if !plainStart(text) {
		return "", "", false
	}
	i := 0
	for {
		j := strings.IndexByte(text[i:], ':')
		if j < 0 {
			return "", "", false
		}
		i += j
		if i+1 == len(text) || text[i+1] == ' ' {
			break
		}
		i++
	}
	key = strings.TrimRight(text[:i], " ")
	if key == "" || len(key) > 1000 || strings.ContainsAny(key, "#[]{},'\"") {
		// A comment, flow indicators, quotes: left to yaml.v3, as are keys past the
		// 1,024 characters YAML allows a key on one line.
		return "", "", false
	}
	if !plainText(key) {
		if v, ok := plainScalar(key); !ok || v != any(key) {
			return "", "", false // a number, boolean or null as a key
		}
	}
	return key, text[i+1:], true
}

// plainStart reports whether text can start a plain scalar as blockTree takes it: not with
// an indicator, but for a "-" that no space follows (-1, -x). YAML lets "?" and ":" start one
// too when no space follows; blockTree leaves those to yaml.v3.
func plainStart(text string) bool {
	if text[0] == '-' {
		return len(text) > 1 && text[1] != ' '
	}
	return strings.IndexByte("?:,[]{}#&*!|>'\"%@`", text[0]) < 0
}

// inlineScalar is the value of the scalar that text (not empty, no leading space) holds,
// with its comment if any: quoted, or plain up to " #".
func inlineScalar(text string) (any, bool) {
	if text[0] == '"' || text[0] == '\'' {
		s, n, ok := quoted(text)
		if !ok {
			return nil, false
		}
		after := text[n:]
		trimmed := strings.TrimLeft(after, " ")
		if trimmed != "" && (trimmed[0] != '#' || len(trimmed) == len(after)) {
			return nil, false // more after the quotes, or a comment not after a space
		}
		return strings.Clone(s), true
	}
	if !plainStart(text) {
		return nil, false
	}
	if i := strings.Index(text, " #"); i >= 0 {
		text = text[:i]
	}
	text = strings.TrimRight(text, " ")
	if strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
		return nil, false // a mapping where a scalar was expected: an error
	}
	v, ok := plainScalar(text)
	if s, isText := v.(string); isText {
		v = strings.Clone(s)
	}
	return v, ok
}

// plainScalar is the value of a plain scalar: yaml.v3 resolves its type from its first
// character, so text that starts with none of the characters that can begin a number,
// boolean, null or infinity is text.
func plainScalar(s string) (any, bool) {
	if s == "<<" {
		return nil, false // a merge key
	}
	if plainText(s) {
		return s, true
	}
	n := yaml.Node{Kind: yaml.ScalarNode, Value: s}
	n.Tag = n.ShortTag()
	return simpleScalar(&n)
}

// plainText reports whether the plain scalar s is text by its first character alone, or
// for an address (10.0.0.1:80): a colon after a first digit makes neither a number nor, unless
// four digits and a dash start it, a timestamp.
func plainText(s string) bool {
	switch {
	case s == "" || s == "<<":
		return false
	case strings.IndexByte("+-0123456789yYnNtTfFoO~.", s[0]) < 0:
		return true
	}
	date := len(s) > 4 && s[4] == '-' && strings.Trim(s[:4], "0123456789") == ""
	return s[0] >= '0' && s[0] <= '9' && strings.IndexByte(s, ':') >= 0 && !date
}

// quoted reads the quoted scalar at the start of text, on one line, and returns its value
// and its length with the quotes. Double quotes take the escapes \\, \", \n and \t; any
// other escape is left to yaml.v3.
func quoted(text string) (string, int, bool) {
	q := text[0]
	var buf []byte // nil until the first escape: until then the value is a slice of text
	from := 1
	for i := 1; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' && q == '\'' && i+1 < len(text) && text[i+1] == '\'':
			buf = append(buf, text[from:i+1]...) // one quote of the two
			i++
			from = i + 1
		case c == q:
			if buf == nil {
				return text[1:i], i + 1, true
			}
			return string(append(buf, text[from:i]...)), i + 1, true
		case c == '\\' && q == '"':
			if i+1 == len(text) {
				return "", 0, false
			}
			e := text[i+1]
			switch e {
			case '\\', '"':
			case 'n':
				e = '\n'
			case 't':
				e = '\t'
			default:
				return "", 0, false
			}
			buf = append(append(buf, text[from:i]...), e)
			i++
			from = i + 1
		}
	}
	return "", 0, false // the scalar goes on past the line
}
