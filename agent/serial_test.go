package main

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// fakeSerial behaves like a virtio console port: while no host is connected, read returns 0 at once and
// write blocks until one connects.
type fakeSerial struct {
	mu        sync.Mutex
	cond      *sync.Cond
	connected bool
	polls     int
	in        chan []byte // host → agent; nil hangs up, errChunk fails the device
	pending   []byte
	out       *io.PipeWriter
}

var errChunk = []byte("\x00device error\x00")

func newFakeSerial(out *io.PipeWriter) *fakeSerial {
	d := &fakeSerial{connected: true, in: make(chan []byte, 64), out: out}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *fakeSerial) Read(p []byte) (int, error) {
	d.mu.Lock()
	if !d.connected {
		d.polls++
		d.mu.Unlock()
		return 0, nil
	}
	if len(d.pending) == 0 {
		d.mu.Unlock()
		chunk := <-d.in
		d.mu.Lock()
		switch {
		case chunk == nil:
			d.connected = false
			d.mu.Unlock()
			return 0, nil
		case &chunk[0] == &errChunk[0]:
			d.mu.Unlock()
			return 0, syscall.ENODEV
		}
		d.pending = chunk
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	d.mu.Unlock()
	return n, nil
}

func (d *fakeSerial) Write(p []byte) (int, error) {
	d.mu.Lock()
	for !d.connected {
		d.cond.Wait()
	}
	d.mu.Unlock()
	return d.out.Write(p)
}

func (d *fakeSerial) reconnect() {
	d.mu.Lock()
	d.connected = true
	d.cond.Broadcast()
	d.mu.Unlock()
}

func (d *fakeSerial) pollCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.polls
}

type chanWriter chan []byte

func (w chanWriter) Write(p []byte) (int, error) {
	w <- append([]byte(nil), p...)
	return len(p), nil
}

func startSerial(t *testing.T) (*client, *fakeSerial, chan error) {
	outR, outW := io.Pipe()
	dev := newFakeSerial(outW)
	fs := &fakeSys{}
	result := make(chan error, 1)
	go func() { result <- serveSerial(dev, "serial-test", fs.ops()) }()
	c := attach(t, chanWriter(dev.in), outR)
	c.sys = fs
	return c, dev, result
}

func TestSerialHostReconnect(t *testing.T) {
	c, dev, result := startSerial(t)
	if f := c.next(0); f.t() != "ready" {
		t.Fatalf("want ready, got %v", f.h)
	}
	expectOK(t, first(c.request(map[string]any{"t": "hello", "version": 1, "nonce": "first"})))
	c.send(map[string]any{"t": "exec", "id": 1, "argv": []string{"sleep", "60"}}, nil)
	started := c.next(1)
	pid := int(started.num("pid"))
	if started.t() != "started" || !alive(pid) {
		t.Fatalf("exec: %v", started.h)
	}
	dir := t.TempDir()
	c.send(map[string]any{"t": "put", "id": 2, "path": filepath.Join(dir, "f")}, nil)
	c.send(map[string]any{"t": "data", "id": 2, "ch": "file"}, []byte("abc"))
	if f := c.next(2); f.t() != "ack" {
		t.Fatalf("put: %v", f.h)
	}
	c.raw(encodeFrame([]byte(`{"t":"hello","id":3,"version":1,"nonce":"lost"}`), nil)[:20]) // half a frame

	dev.in <- nil // the host goes away
	eventually(t, "the agent to poll for a new host", func() bool { return dev.pollCount() > 0 })
	eventually(t, "the old host's process to die", func() bool { return !alive(pid) })
	eventually(t, "the old host's put to be dropped", func() bool {
		entries, _ := os.ReadDir(dir)
		return len(entries) == 0
	})

	dev.reconnect()
	if f := c.next(0); f.t() != "ready" {
		t.Fatalf("a reconnecting host wants ready first, got %v", f.h)
	}
	// A new host reuses ids; the half frame from before must not swallow its hello.
	c.send(map[string]any{"t": "hello", "id": 1, "version": 1, "nonce": "second"}, nil)
	if r := expectOK(t, c.next(1)); r["nonce"] != "second" {
		t.Fatalf("hello: %v", r)
	}
	c.send(map[string]any{"t": "exec", "id": 2, "argv": []string{"echo", "again"}}, nil)
	exit, frames := c.final(2)
	if exit.h["code"] != float64(0) || channelData(frames, "stdout") != "again\n" {
		t.Fatalf("exec on the new host: %v %v", exit.h, frames)
	}
	// Nothing of the old host's streams reached the new one.
	for _, id := range []int64{0, 1, 3} {
		if f, ok := c.nextWithin(id, 0); ok {
			t.Fatalf("stale frame for id %d: %v", id, f.h)
		}
	}

	dev.in <- errChunk
	if err := <-result; err != syscall.ENODEV {
		t.Fatalf("serveSerial returned %v, want ENODEV", err)
	}
}

// On a serial port, a hello means any earlier host is gone, even without a hangup in between.
func TestSerialHelloCancelsStreams(t *testing.T) {
	c, dev, result := startSerial(t)
	c.next(0)
	expectOK(t, first(c.request(map[string]any{"t": "hello", "version": 1, "nonce": "a"})))
	c.send(map[string]any{"t": "exec", "id": 7, "argv": []string{"sleep", "60"}}, nil)
	pid := int(c.next(7).num("pid"))
	expectOK(t, first(c.request(map[string]any{"t": "hello", "version": 1, "nonce": "b"})))
	eventually(t, "the earlier host's process to die", func() bool { return !alive(pid) })
	if f, ok := c.nextWithin(7, 0); ok {
		t.Fatalf("the earlier host's exit reached the new host: %v", f.h)
	}
	dev.in <- errChunk
	<-result
}
