package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log"
	"strconv"
)

// Wire format (PROTOCOL.md, "Frames"): magic, header length, payload length, JSON header, raw payload.
const (
	frameHeadLen = 12
	maxHeader    = 65536
	maxPayload   = 65536
	maxFrame     = frameHeadLen + maxHeader + maxPayload
)

var frameMagic = []byte{0xB4, 0x6E, 0x67, 0x31}

type frame struct {
	header  []byte
	payload []byte
}

func encodeFrame(header, payload []byte) []byte {
	buf := make([]byte, frameHeadLen+len(header)+len(payload))
	copy(buf, frameMagic)
	binary.BigEndian.PutUint32(buf[4:], uint32(len(header)))
	binary.BigEndian.PutUint32(buf[8:], uint32(len(payload)))
	copy(buf[frameHeadLen:], header)
	copy(buf[frameHeadLen+len(header):], payload)
	return buf
}

// dataHeader is built by hand because it is the one header on the bulk path.
func dataHeader(id int64, ch string) []byte {
	b := make([]byte, 0, 40+len(ch))
	b = append(b, `{"t":"data","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"ch":`...)
	b = strconv.AppendQuote(b, ch)
	return append(b, '}')
}

// frameReader keeps its own buffer rather than a bufio.Reader because resynchronising means stepping back
// into bytes already examined (a frame whose header turned out not to be JSON is skipped one byte at a time).
type frameReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	skipped    int
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

// reset drops whatever partial frame is buffered: after the serial host went away its bytes mean nothing.
func (fr *frameReader) reset() {
	fr.start, fr.end, fr.skipped = 0, 0, 0
}

func (fr *frameReader) fill(n int) error {
	for fr.end-fr.start < n {
		if fr.start+n > len(fr.buf) {
			if n > len(fr.buf) {
				size := 2 * len(fr.buf)
				if size < 16384 {
					size = 16384
				}
				for size < n {
					size *= 2
				}
				if size > maxFrame {
					size = maxFrame
				}
				nb := make([]byte, size)
				fr.end = copy(nb, fr.buf[fr.start:fr.end])
				fr.buf, fr.start = nb, 0
			} else {
				fr.end = copy(fr.buf, fr.buf[fr.start:fr.end])
				fr.start = 0
			}
		}
		m, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += m
		if err != nil && fr.end-fr.start < n {
			return err
		}
	}
	return nil
}

// skip moves past the byte at start, jumping straight to the next possible magic: the same result as
// skipping byte by byte, without the quadratic cost on a long run of garbage.
func (fr *frameReader) skip() {
	from := fr.start + 1
	i := bytes.Index(fr.buf[from:fr.end], frameMagic)
	next := fr.end - (len(frameMagic) - 1) // a magic may straddle the end of what has arrived
	if i >= 0 {
		next = from + i
	}
	if next < from {
		next = from
	}
	fr.skipped += next - fr.start
	fr.start = next
}

func (fr *frameReader) next() (frame, error) {
	for {
		if err := fr.fill(frameHeadLen); err != nil {
			return frame{}, err
		}
		b := fr.buf[fr.start:fr.end]
		if !bytes.Equal(b[:4], frameMagic) {
			fr.skip()
			continue
		}
		h := int64(binary.BigEndian.Uint32(b[4:8]))
		p := int64(binary.BigEndian.Uint32(b[8:12]))
		if h < 2 || h > maxHeader || p > maxPayload {
			fr.skip()
			continue
		}
		total := frameHeadLen + int(h) + int(p)
		if err := fr.fill(total); err != nil {
			return frame{}, err
		}
		b = fr.buf[fr.start : fr.start+total]
		hdr := b[frameHeadLen : frameHeadLen+h]
		if !isJSONObject(hdr) {
			fr.skip()
			continue
		}
		if fr.skipped > 0 {
			log.Printf("skipped %d bytes that were not a frame", fr.skipped)
			fr.skipped = 0
		}
		f := frame{header: append([]byte(nil), hdr...)}
		if p > 0 {
			f.payload = append([]byte(nil), b[frameHeadLen+h:]...)
		}
		fr.start += total
		return f, nil
	}
}

func isJSONObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

// envelope reads only `t` and `id`: the rest of a header is decoded by whoever handles its type.
func parseEnvelope(hdr []byte) (t string, id int64, ok bool) {
	var env struct {
		T  json.RawMessage `json:"t"`
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(hdr, &env) != nil || env.ID == nil {
		return "", 0, false
	}
	if json.Unmarshal(env.ID, &id) != nil || id < 0 || id >= 1<<31 {
		return "", 0, false
	}
	if env.T != nil && json.Unmarshal(env.T, &t) != nil {
		t = ""
	}
	return t, id, true
}
