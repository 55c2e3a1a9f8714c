package main

import (
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait in the tests: a broken agent fails a test instead of hanging it.
const waitLimit = 10 * time.Second

type tframe struct {
	h       map[string]any
	payload []byte
}

func (f tframe) t() string { s, _ := f.h["t"].(string); return s }
func (f tframe) id() int64 { n, _ := f.h["id"].(float64); return int64(n) }
func (f tframe) str(k string) string {
	s, _ := f.h[k].(string)
	return s
}
func (f tframe) num(k string) float64 {
	n, _ := f.h[k].(float64)
	return n
}
func (f tframe) r() map[string]any { m, _ := f.h["r"].(map[string]any); return m }

// client plays the host: it writes frames into a session and demultiplexes what comes back by id.
type client struct {
	t       *testing.T
	w       io.Writer
	wmu     sync.Mutex
	s       *session
	sys     *fakeSys
	autoAck bool

	mu     sync.Mutex
	stash  map[int64][]tframe
	wake   chan struct{}
	closed bool
	nextID int64
}

type fakeSys struct {
	mu    sync.Mutex
	calls []string
	ipErr error
}

func (f *fakeSys) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeSys) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeSys) ops() *sysOps {
	return &sysOps{
		powerOff: func(force bool) error {
			f.record("poweroff " + map[bool]string{true: "force", false: "soft"}[force])
			return nil
		},
		setHostname: func(n string) error { f.record("hostname " + n); return nil },
		setClock:    func(ms int64) error { f.record("clock " + jsonString(ms)); return nil },
		runIP: func(args []string) error {
			f.record("ip " + jsonString(args))
			return f.ipErr
		},
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// newClient starts a session over two io.Pipes, as the stdio and vsock transports run it.
func newClient(t *testing.T) *client {
	hostR, hostW := io.Pipe()   // host → agent
	agentR, agentW := io.Pipe() // agent → host
	fs := &fakeSys{}
	s := newSession("test", false, fs.ops())
	s.start(writeAll(agentW))
	served := make(chan struct{})
	go func() {
		s.serve(newFrameReader(hostR))
		s.shutdown(5 * time.Second)
		agentW.Close()
		close(served)
	}()
	c := attach(t, hostW, agentR)
	c.s, c.sys = s, fs
	t.Cleanup(func() {
		hostW.Close()
		select {
		case <-served:
		case <-time.After(waitLimit):
			t.Errorf("the session did not end after the host closed")
		}
	})
	return c
}

func attach(t *testing.T, w io.Writer, r io.Reader) *client {
	c := &client{t: t, w: w, stash: map[int64][]tframe{}, wake: make(chan struct{}, 1), autoAck: true, nextID: 100}
	go c.readLoop(r)
	return c
}

func (c *client) readLoop(r io.Reader) {
	fr := newFrameReader(r)
	for {
		f, err := fr.next()
		if err != nil {
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
			c.notify()
			return
		}
		tf := tframe{payload: f.payload}
		if err := json.Unmarshal(f.header, &tf.h); err != nil {
			c.t.Errorf("agent sent a header that is not JSON: %q", f.header)
			continue
		}
		if tf.t() == "data" && c.autoAck {
			c.send(map[string]any{"t": "ack", "id": tf.id(), "ch": tf.str("ch"), "n": len(f.payload)}, nil)
		}
		c.mu.Lock()
		c.stash[tf.id()] = append(c.stash[tf.id()], tf)
		c.mu.Unlock()
		c.notify()
	}
}

func (c *client) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *client) id() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

func (c *client) send(h map[string]any, payload []byte) {
	b, err := json.Marshal(h)
	if err != nil {
		c.t.Fatalf("marshal: %v", err)
	}
	c.raw(encodeFrame(b, payload))
}

func (c *client) raw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.Write(b)
}

// next returns the next frame for id, failing the test after waitLimit.
func (c *client) next(id int64) tframe {
	c.t.Helper()
	f, ok := c.nextWithin(id, waitLimit)
	if !ok {
		c.t.Fatalf("no frame for id %d within %v", id, waitLimit)
	}
	return f
}

func (c *client) nextWithin(id int64, d time.Duration) (tframe, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if q := c.stash[id]; len(q) > 0 {
			c.stash[id] = q[1:]
			c.mu.Unlock()
			return q[0], true
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return tframe{}, false
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			return tframe{}, false
		}
	}
}

// request sends a request and returns its final answer (ok, error or exit) with everything before it.
func (c *client) request(h map[string]any) (tframe, []tframe) {
	c.t.Helper()
	id := c.id()
	h["id"] = id
	c.send(h, nil)
	return c.final(id)
}

// requestWithin is request for loops over many cases: a missing answer fails one case, not the test.
func (c *client) requestWithin(h map[string]any, d time.Duration) tframe {
	id := c.id()
	h["id"] = id
	c.send(h, nil)
	for {
		f, ok := c.nextWithin(id, d)
		if !ok {
			return tframe{h: map[string]any{"t": "(no answer)"}}
		}
		switch f.t() {
		case "ok", "error", "exit":
			return f
		}
	}
}

func (c *client) final(id int64) (tframe, []tframe) {
	c.t.Helper()
	var before []tframe
	for {
		f := c.next(id)
		switch f.t() {
		case "ok", "error", "exit":
			return f, before
		}
		before = append(before, f)
	}
}

func expectOK(t *testing.T, f tframe) map[string]any {
	t.Helper()
	if f.t() != "ok" {
		t.Fatalf("want ok, got %v", f.h)
	}
	return f.r()
}

func expectErr(t *testing.T, f tframe, code string) {
	t.Helper()
	if f.t() != "error" || f.str("code") != code {
		t.Fatalf("want error %s, got %v", code, f.h)
	}
	if f.str("message") == "" {
		t.Fatalf("error without a message: %v", f.h)
	}
}

// channelData concatenates the payloads of data frames on ch.
func channelData(frames []tframe, ch string) string {
	var out []byte
	for _, f := range frames {
		if f.t() == "data" && f.str("ch") == ch {
			out = append(out, f.payload...)
		}
	}
	return string(out)
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
