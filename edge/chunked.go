package edge

import (
	"bytes"
	"errors"
	"strconv"
)

// The limits of the goroutine engine's chunked reader (net/http's, on an
// 8 KiB bufio.Reader) and of readTrailers, which chunkDecoder keeps so
// that both engines take and refuse the same bodies.
const (
	maxChunkLine  = 4096    // a chunk-size line, without its CRLF, is shorter
	readerBufSize = 8 << 10 // no line may reach it without its LF
	maxExcess     = 16 << 10
)

var (
	errChunkLine   = errors.New("malformed chunk-size line")
	errChunkCRLF   = errors.New("malformed chunked encoding: no CRLF after the chunk data")
	errChunkExcess = errors.New("chunked encoding contains too much non-data")
)

type chunkState uint8

const (
	chunkSize    chunkState = iota // in a chunk-size line
	chunkData                      // in a chunk's data
	chunkCR                        // the CR after the data
	chunkLF                        // the LF after it
	chunkTrailer                   // in the trailer section
	chunkDone                      // the body ended
)

// chunkDecoder decodes a chunked body (RFC 9112 §7.1) that arrives in
// pieces, as the event loop reads it. Chunk extensions and trailer fields
// are dropped, as the goroutine engine drops them.
type chunkDecoder struct {
	state    chunkState
	left     uint64 // data bytes of the current chunk still to come
	line     []byte // the chunk-size line so far
	excess   int64  // overhead beyond what the data justifies
	trailers int    // trailer bytes so far
	tline    int    // bytes of the current trailer line so far
	tfirst   byte   // its first byte
}

func (d *chunkDecoder) reset() {
	*d = chunkDecoder{line: d.line[:0]}
}

func (d *chunkDecoder) done() bool { return d.state == chunkDone }

// decode takes the next bytes of the body and appends their data to dst.
// It returns dst and how many bytes of b it used: all of them unless the
// body ended within b.
func (d *chunkDecoder) decode(dst, b []byte) ([]byte, int, error) {
	i := 0
	for i < len(b) {
		switch d.state {
		case chunkData:
			k := len(b) - i
			if uint64(k) > d.left {
				k = int(d.left)
			}
			dst = append(dst, b[i:i+k]...)
			i += k
			if d.left -= uint64(k); d.left == 0 {
				d.state = chunkCR
			}
		case chunkCR, chunkLF:
			want := byte('\r')
			if d.state == chunkLF {
				want = '\n'
			}
			if b[i] != want {
				return dst, i, errChunkCRLF
			}
			i++
			if d.state == chunkCR {
				d.state = chunkLF
			} else {
				d.state = chunkSize
			}
		case chunkSize:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				d.line = append(d.line, b[i:]...)
				if len(d.line) >= readerBufSize {
					return dst, len(b), errChunkLine
				}
				return dst, len(b), nil
			}
			d.line = append(d.line, b[i:i+j]...)
			i += j + 1
			if err := d.sizeLine(); err != nil {
				return dst, i, err
			}
		case chunkTrailer:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				if d.tline == 0 {
					d.tfirst = b[i]
				}
				d.tline += len(b) - i
				if d.tline >= readerBufSize {
					return dst, len(b), errHeadTooLarge
				}
				return dst, len(b), nil
			}
			if d.tline == 0 && j > 0 {
				d.tfirst = b[i]
			}
			d.tline += j
			i += j + 1
			if d.tline >= readerBufSize {
				return dst, i, errHeadTooLarge
			}
			if d.trailers += d.tline + 1; d.trailers > maxHeadBytes {
				return dst, i, errHeadTooLarge
			}
			if d.tline == 0 || (d.tline == 1 && d.tfirst == '\r') {
				d.state = chunkDone
				return dst, i, nil
			}
			d.tline = 0
		case chunkDone:
			return dst, i, nil
		}
	}
	return dst, i, nil
}

// sizeLine takes the complete chunk-size line in d.line (its LF cut), as
// net/http's chunked reader does: CRLF only, extensions dropped, at most
// 16 hex digits, and a bound on overhead per byte of data.
func (d *chunkDecoder) sizeLine() error {
	p := d.line
	d.line = d.line[:0]
	if len(p) == 0 || p[len(p)-1] != '\r' || bytes.IndexByte(p, '\r') != len(p)-1 {
		return errChunkLine
	}
	p = p[:len(p)-1]
	if len(p) >= maxChunkLine {
		return errChunkLine
	}
	d.excess += int64(len(p)) + 2
	for len(p) > 0 && (p[len(p)-1] == ' ' || p[len(p)-1] == '\t') {
		p = p[:len(p)-1]
	}
	for k, c := range p {
		if c == ';' {
			p = p[:k]
			break
		}
	}
	if len(p) == 0 || len(p) > 16 {
		return errChunkLine
	}
	var n uint64
	for _, c := range p {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return errChunkLine
		}
		n = n<<4 | uint64(c)
	}
	d.excess -= 16 + 2*int64(n)
	d.excess = max(d.excess, 0)
	if d.excess > maxExcess {
		return errChunkExcess
	}
	d.left = n
	if n == 0 {
		d.state = chunkTrailer
	} else {
		d.state = chunkData
	}
	return nil
}

// appendChunk appends data as one chunk.
func appendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(len(data)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}
