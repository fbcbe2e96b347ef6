package h1

import "errors"

// ErrMalformedBody is the read error a Conn returns where a chunked body breaks the framing
// rules. The bytes before the fault have been handed on; nothing after it will be.
var ErrMalformedBody = errors.New("malformed chunked request body")

// maxChunkLine bounds a chunk-size line, extensions included; net/http keeps such lines in
// its buffer, and no client needs more for a size and a few extensions.
const maxChunkLine = 4096

type chunkStep uint8

const (
	csSize      chunkStep = iota // hex digits of a chunk size
	csSizeWS                     // whitespace after the size, before an extension
	csExt                        // a chunk extension, up to CR
	csSizeLF                     // LF after the size line's CR
	csData                       // chunk data
	csDataCR                     // CR after the data
	csDataLF                     // LF after the data
	csTrailer                    // start of a trailer line, or CR of the final empty line
	csTrailName                  // a trailer field name, up to ':'
	csTrailVal                   // a trailer field value, up to CR
	csTrailLF                    // LF after a trailer line's CR
	csEndLF                      // LF of the final empty line
	csDone                       // the body is complete
)

// chunker follows a chunked body byte by byte (RFC 9112 section 7.1).
type chunker struct {
	lim    Limits
	step   chunkStep
	digits int   // hex digits of the current size
	size   int64 // current chunk's size, then what is left of its data
	line   int   // bytes of the current size line, or of the trailer section
	fields int   // trailer fields
}

func (c *chunker) reset(lim Limits) { *c = chunker{lim: lim} }

// feed consumes b and returns how many bytes belong to the body: all of b unless the body
// ended inside it (done) or b breaks the rules (bad), in which case n bytes before the
// end or the fault are the body's.
func (c *chunker) feed(b []byte) (n int, done, bad bool) {
	for n < len(b) {
		if c.step == csData {
			k := int64(len(b) - n)
			if k > c.size {
				k = c.size
			}
			n += int(k)
			c.size -= k
			if c.size == 0 {
				c.step = csDataCR
			}
			continue
		}
		if !c.byte(b[n]) {
			return n, false, true
		}
		n++
		if c.step == csDone {
			return n, true, false
		}
	}
	return n, false, false
}

// byte advances the machine by one byte outside chunk data; false is a framing fault.
func (c *chunker) byte(x byte) bool {
	switch c.step {
	case csSize, csSizeWS, csExt:
		if c.line++; c.line > maxChunkLine {
			return false
		}
	case csTrailer, csTrailName, csTrailVal:
		if c.line++; c.line > c.lim.MaxHeaderBytes {
			return false
		}
	}
	switch c.step {
	case csSize:
		if v, ok := unhex(x); ok {
			if c.digits++; c.digits > 15 {
				return false
			}
			c.size = c.size<<4 | int64(v)
			return true
		}
		if c.digits == 0 {
			return false
		}
		switch x {
		case '\r':
			c.step = csSizeLF
		case ';':
			c.step = csExt
		case ' ', '\t':
			c.step = csSizeWS
		default:
			return false
		}
	case csSizeWS:
		switch x {
		case ' ', '\t':
		case ';':
			c.step = csExt
		default:
			return false
		}
	case csExt:
		if x == '\r' {
			c.step = csSizeLF
		} else if !fieldValueByte(x) {
			return false
		}
	case csSizeLF:
		if x != '\n' {
			return false
		}
		c.line, c.digits = 0, 0
		if c.size == 0 {
			c.step = csTrailer
		} else {
			c.step = csData
		}
	case csDataCR:
		if x != '\r' {
			return false
		}
		c.step = csDataLF
	case csDataLF:
		if x != '\n' {
			return false
		}
		c.step = csSize
	case csTrailer:
		switch {
		case x == '\r':
			c.step = csEndLF
		case tchar[x]:
			if c.fields++; c.fields > c.lim.MaxHeaderCount {
				return false
			}
			c.step = csTrailName
		default:
			return false // obs-fold, a stray LF or a bad name
		}
	case csTrailName:
		switch {
		case x == ':':
			c.step = csTrailVal
		case !tchar[x]:
			return false
		}
	case csTrailVal:
		if x == '\r' {
			c.step = csTrailLF
		} else if !fieldValueByte(x) {
			return false
		}
	case csTrailLF:
		if x != '\n' {
			return false
		}
		c.step = csTrailer
	case csEndLF:
		if x != '\n' {
			return false
		}
		c.step = csDone
	default:
		return false
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
