package main

import (
	"io"
	"log"
	"sync"
	"syscall"
)

// windowSize is the per-direction flow-control window of PROTOCOL.md, "Streams".
const windowSize = 262144

type streamSpec struct {
	in   string   // the channel the host sends on ("" when it sends nothing)
	outs []string // the channels the agent sends on
	run  func(st *stream)
}

type stream struct {
	id    int64
	epoch uint64
	s     *session
	outs  map[string]*window
	inCh  string
	in    *inbox

	done   chan struct{} // closed by cancel: the host's cancel, a session reset, or a broken window
	once   sync.Once
	reason *agentError

	mu       sync.Mutex
	signalFn func(syscall.Signal) // set by exec once its process exists
}

func newStream(s *session, epoch uint64, id int64, spec streamSpec) *stream {
	st := &stream{id: id, epoch: epoch, s: s, outs: map[string]*window{}, inCh: spec.in, done: make(chan struct{})}
	for _, ch := range spec.outs {
		st.outs[ch] = newWindow()
	}
	if spec.in != "" {
		st.in = newInbox()
	}
	return st
}

func (st *stream) cancel(reason *agentError) {
	if reason == nil {
		reason = errf(codeCancelled, "the stream ended") // cancelled() must be non-nil once done is closed
	}
	st.once.Do(func() {
		st.reason = reason
		close(st.done)
	})
}

// cancelled returns why the stream was cancelled, or nil while it is not.
func (st *stream) cancelled() *agentError {
	select {
	case <-st.done:
		return st.reason
	default:
		return nil
	}
}

func (st *stream) deliver(ch string, p []byte) {
	if st.in == nil || ch != st.inCh || st.cancelled() != nil {
		return
	}
	if !st.in.push(p) {
		log.Printf("%s: stream %d: the host overran the %d-byte window on %q", st.s.name, st.id, windowSize, ch)
		st.cancel(badRequest("more than %d unacknowledged bytes on %q", windowSize, ch))
	}
}

func (st *stream) deliverEOF(ch string) {
	if st.in != nil && ch == st.inCh {
		st.in.pushEOF()
	}
}

func (st *stream) ack(ch string, n int64) {
	if w := st.outs[ch]; w != nil {
		w.release(n)
	}
}

func (st *stream) signal(name string) {
	sig, ok := signalsByName[name]
	if !ok {
		log.Printf("%s: stream %d: ignoring unknown signal %q", st.s.name, st.id, name)
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.signalFn != nil {
		st.signalFn(sig)
	}
}

// consumed acknowledges input the stream has used up (or thrown away), reopening the host's window.
func (st *stream) consumed(n int) {
	st.s.sendHeader(st.epoch, map[string]any{"t": "ack", "id": st.id, "ch": st.inCh, "n": n})
}

func (st *stream) send(ch string, p []byte) {
	st.s.sendData(st.epoch, st.id, ch, p)
}

// The final answer goes out only after the stream has left the table, so the host may open a new stream
// the moment it reads the answer without meeting TOO_MANY.
func (st *stream) unregister() {
	st.s.mu.Lock()
	if st.s.streams[st.id] == st {
		delete(st.s.streams, st.id)
	}
	st.s.mu.Unlock()
}

func (st *stream) finishOK(r any) {
	st.unregister()
	st.s.replyOK(st.epoch, st.id, r)
}

func (st *stream) finishErr(e *agentError) {
	st.unregister()
	st.s.replyErr(st.epoch, st.id, e)
}

func (st *stream) finishHeader(h map[string]any) {
	st.unregister()
	st.s.sendHeader(st.epoch, h)
}

// window counts what the agent may still send on one channel before the host acknowledges more.
type window struct {
	mu    sync.Mutex
	avail int64
	wake  chan struct{}
}

func newWindow() *window { return &window{avail: windowSize, wake: make(chan struct{}, 1)} }

// reserve waits for credit and takes up to max bytes of it; false once done is closed.
func (w *window) reserve(max int, done <-chan struct{}) (int, bool) {
	for {
		w.mu.Lock()
		if w.avail > 0 {
			n := int64(max)
			if n > w.avail {
				n = w.avail
			}
			w.avail -= n
			w.mu.Unlock()
			return int(n), true
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-done:
			return 0, false
		}
	}
}

func (w *window) release(n int64) {
	w.mu.Lock()
	w.avail += n
	if w.avail > windowSize {
		w.avail = windowSize // an ack for more than was sent must not widen the window
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// inbox queues what the host sent until the stream consumes it. The reader never blocks on it; the
// host's window bounds it.
type inbox struct {
	mu     sync.Mutex
	q      [][]byte
	queued int
	eof    bool
	wake   chan struct{}
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

func (in *inbox) push(p []byte) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.eof {
		return true // data after eof is the host's mistake, and harmless
	}
	if in.queued+len(p) > windowSize {
		return false
	}
	in.q = append(in.q, p)
	in.queued += len(p)
	in.notify()
	return true
}

func (in *inbox) pushEOF() {
	in.mu.Lock()
	in.eof = true
	in.notify()
	in.mu.Unlock()
}

func (in *inbox) notify() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// pop returns the next chunk, or eof once the host ended its direction; ok is false once done is closed.
func (in *inbox) pop(done <-chan struct{}) (p []byte, eof, ok bool) {
	for {
		in.mu.Lock()
		if len(in.q) > 0 {
			p = in.q[0]
			in.q[0] = nil
			in.q = in.q[1:]
			in.queued -= len(p)
			in.mu.Unlock()
			return p, false, true
		}
		eof = in.eof
		in.mu.Unlock()
		if eof {
			return nil, true, true
		}
		select {
		case <-in.wake:
		case <-done:
			return nil, false, false
		}
	}
}

// pump copies r into data frames on ch, never beyond the window. It returns nil at EOF or the read error.
// Once the stream is cancelled it returns at once, or with drain keeps reading and discarding to EOF
// (an exec's pipes must be emptied or its process may block on a full pipe instead of dying).
func (st *stream) pump(ch string, r io.Reader, drain bool) error {
	w := st.outs[ch]
	buf := make([]byte, maxPayload)
	discard := false
	for {
		n := len(buf)
		if !discard && st.cancelled() != nil {
			if !drain {
				return nil
			}
			discard = true
		}
		if !discard {
			k, ok := w.reserve(len(buf), st.done)
			if !ok {
				continue // cancelled meanwhile: decided at the top
			}
			n = k
		}
		m, err := r.Read(buf[:n])
		if !discard {
			if m > 0 {
				st.send(ch, buf[:m])
			}
			if m < n {
				w.release(int64(n - m))
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
