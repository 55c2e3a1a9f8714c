package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func mustNext(t *testing.T, fr *frameReader) frame {
	t.Helper()
	f, err := fr.next()
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return f
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xAB}, maxPayload)
	// A header of exactly the maximum size: a JSON object padded with a long string.
	maxHdr := []byte(`{"t":"x","id":1,"pad":"` + strings.Repeat("p", maxHeader-len(`{"t":"x","id":1,"pad":""}`)) + `"}`)
	if len(maxHdr) != maxHeader {
		t.Fatalf("test header is %d bytes", len(maxHdr))
	}
	cases := []frame{
		{header: []byte(`{}`)},
		{header: dataHeader(7, "stdout"), payload: []byte("hello")},
		{header: []byte(`{"t":"data","id":2147483647,"ch":"file"}`), payload: big},
		{header: maxHdr, payload: big},
	}
	var stream bytes.Buffer
	for _, c := range cases {
		stream.Write(encodeFrame(c.header, c.payload))
	}
	// One byte at a time exercises every partial-read path of the buffer.
	fr := newFrameReader(iotest.OneByteReader(bytes.NewReader(stream.Bytes())))
	for i, c := range cases {
		f := mustNext(t, fr)
		if !bytes.Equal(f.header, c.header) || !bytes.Equal(f.payload, c.payload) {
			t.Fatalf("frame %d: got header %.60q (%d bytes), payload %d bytes", i, f.header, len(f.header), len(f.payload))
		}
	}
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
	if got := string(dataHeader(3, `a"b`)); got != `{"t":"data","id":3,"ch":"a\"b"}` {
		t.Fatalf("dataHeader: %s", got)
	}
}

func rawFrame(h, p uint32, rest []byte) []byte {
	b := append([]byte(nil), frameMagic...)
	b = binary.BigEndian.AppendUint32(b, h)
	b = binary.BigEndian.AppendUint32(b, p)
	return append(b, rest...)
}

func TestFrameResync(t *testing.T) {
	good := encodeFrame([]byte(`{"t":"hello","id":1}`), nil)
	good2 := encodeFrame([]byte(`{"t":"data","id":2,"ch":"x"}`), []byte("payload"))
	var in bytes.Buffer
	in.WriteString("garbage before anything")
	in.Write(frameMagic[:3]) // a partial magic
	in.Write(good)
	in.Write(rawFrame(1, 0, []byte("{")))                // header too short
	in.Write(rawFrame(maxHeader+1, 0, nil))              // header too long
	in.Write(rawFrame(2, maxPayload+1, []byte("{}")))    // payload too long
	in.Write(encodeFrame([]byte(`[1,2]`), nil))          // JSON, but not an object
	in.Write(encodeFrame([]byte(`{"t":"broken"`), nil))  // not JSON at all
	in.Write(encodeFrame([]byte(`null`), []byte("xyz"))) // not an object either
	in.Write(good[:20])                                  // the tail of a previous connection…
	in.Write(good2)                                      // …then a real frame
	fr := newFrameReader(bytes.NewReader(in.Bytes()))
	if f := mustNext(t, fr); !bytes.Equal(f.header, good[12:]) {
		t.Fatalf("first frame: %q", f.header)
	}
	f := mustNext(t, fr)
	if string(f.header) != `{"t":"data","id":2,"ch":"x"}` || string(f.payload) != "payload" {
		t.Fatalf("after garbage: %q %q", f.header, f.payload)
	}
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestFrameReaderReset(t *testing.T) {
	r, w := io.Pipe()
	fr := newFrameReader(r)
	good := encodeFrame([]byte(`{"t":"x","id":1}`), nil)
	go func() {
		w.Write(good[:15]) // half a frame, then the writer "goes away"
		w.CloseWithError(io.EOF)
	}()
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	fr.reset()
	fr.r = bytes.NewReader(good)
	if f := mustNext(t, fr); string(f.header) != `{"t":"x","id":1}` {
		t.Fatalf("after reset: %q", f.header)
	}
}

func TestParseEnvelope(t *testing.T) {
	for _, c := range []struct {
		in   string
		t    string
		id   int64
		good bool
	}{
		{`{"t":"exec","id":5}`, "exec", 5, true},
		{`{"id":0}`, "", 0, true},
		{`{"t":"x","id":2147483648}`, "", 0, false},
		{`{"t":"x","id":-1}`, "", 0, false},
		{`{"t":"x","id":1.5}`, "", 0, false},
		{`{"t":"x","id":"1"}`, "", 0, false},
		{`{"t":"x"}`, "", 0, false},
		{`{"t":7,"id":3}`, "", 3, true},
	} {
		typ, id, ok := parseEnvelope([]byte(c.in))
		if ok != c.good || ok && (typ != c.t || id != c.id) {
			t.Errorf("%s: got %q %d %v", c.in, typ, id, ok)
		}
	}
}

func TestBootID(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot_id here")
	}
	if bootID() != strings.TrimSpace(string(b)) || len(bootID()) != 36 {
		t.Fatalf("bootID %q", bootID())
	}
}
