package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"testing"
)

// referenceChunked decodes data as the goroutine engine does: net/http's
// chunked reader, then readTrailers, on an 8 KiB reader. It returns the
// body, the bytes used, and whether the input ended too soon (incomplete)
// or was refused (err).
func referenceChunked(data []byte) (body []byte, used int, incomplete bool, err error) {
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, readerBufSize)
	body, err = io.ReadAll(httputil.NewChunkedReader(br))
	if err == nil {
		_, err = readTrailers(br, nil)
	}
	used = len(data) - r.Len() - br.Buffered()
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return body, used, true, nil
	}
	return body, used, false, err
}

// FuzzChunkDecoder checks the event loop's chunked decoder against the
// goroutine engine's reader: fed in pieces (split where the fuzzer says),
// it must give the same body and stop at the same byte, wait for more
// exactly where the reader would need more, and refuse what it refuses.
func FuzzChunkDecoder(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n6 \t\r\n world\r\n0\r\nX-Trailer: a\r\n\r\nGET / HTTP/1.1\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"10000000000000000\r\n",
		"A\r\n0123456789\r\n0\r\n\n",
		"0\r\nbad\r\r\n\r\n",
		"5\r\nhel",
	} {
		f.Add([]byte(s), uint64(0x0305_0107))
	}
	f.Fuzz(func(t *testing.T, data []byte, cuts uint64) {
		want, wantUsed, incomplete, wantErr := referenceChunked(data)

		var d chunkDecoder
		var got []byte
		var err error
		used := 0
		for rest := data; len(rest) > 0 && err == nil && !d.done(); {
			k := int(cuts%13) + 1 // piece sizes from the fuzzer
			cuts = cuts/13 | cuts<<60
			k = min(k, len(rest))
			var n int
			got, n, err = d.decode(got, rest[:k])
			used += n
			rest = rest[n:]
			if err == nil && !d.done() && n != k {
				t.Fatalf("used %d of %d bytes without ending or failing", n, k)
			}
		}
		switch {
		case wantErr != nil:
			if err == nil {
				t.Fatalf("%q: the reader refuses it (%v), the decoder took it (done %v, body %q)", data, wantErr, d.done(), got)
			}
		case incomplete && err != nil:
			// Refused a byte early: the reader must refuse whatever follows.
			for _, more := range []string{"\r\n0\r\n\r\n", "\n0\r\n\r\n", "0\r\n\r\n"} {
				if _, _, inc, rerr := referenceChunked(append(data[:len(data):len(data)], more...)); rerr == nil {
					t.Fatalf("%q: the decoder refused it (%v), the reader takes it followed by %q (incomplete %v)", data, err, more, inc)
				}
			}
		case incomplete:
			if d.done() {
				t.Fatalf("%q: the reader wants more, the decoder: done %v, err %v", data, d.done(), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%q: body %q, want %q", data, got, want)
			}
		default:
			if err != nil || !d.done() || !bytes.Equal(got, want) || used != wantUsed {
				t.Fatalf("%q: err %v, done %v, body %q, used %d; want body %q, used %d", data, err, d.done(), got, used, want, wantUsed)
			}
		}
	})
}

func TestAppendChunk(t *testing.T) {
	if got := string(appendChunk([]byte("x"), bytes.Repeat([]byte("a"), 26))); got != "x1a\r\n"+string(bytes.Repeat([]byte("a"), 26))+"\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := appendChunk(nil, nil); len(got) != 0 {
		t.Fatalf("an empty chunk would end the body: %q", got)
	}
}
