package main

import (
	"encoding/json"
	"log"
	"sync"
)

// maxQueuedData bounds the data frames waiting for the transport. Control frames are never held back, so
// the reader, which sends acks and answers, cannot block on a slow transport and stall every stream.
const maxQueuedData = 1 << 20

type outFrame struct {
	buf   []byte
	epoch uint64
	data  bool
	sent  chan struct{} // closed once written or dropped, for the few callers that must know
}

// outQueue is FIFO across control and data frames: a stream's final answer must never overtake its data.
type outQueue struct {
	mu        sync.Mutex
	cond      *sync.Cond
	items     []outFrame
	dataBytes int
	closed    bool
}

func newOutQueue() *outQueue {
	q := &outQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *outQueue) push(f outFrame) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for f.data && q.dataBytes >= maxQueuedData && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		if f.sent != nil {
			close(f.sent)
		}
		return
	}
	if f.data {
		q.dataBytes += len(f.buf)
	}
	q.items = append(q.items, f)
	q.cond.Broadcast()
}

// pop returns frames until the queue is closed and empty.
func (q *outQueue) pop() (outFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return outFrame{}, false
	}
	f := q.items[0]
	q.items[0] = outFrame{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let a burst's backing array go
	}
	if f.data {
		q.dataBytes -= len(f.buf)
	}
	q.cond.Broadcast()
	return f, true
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// writeLoop is the session's only writer, so frames never interleave on the transport. Frames of an
// earlier epoch (a serial host that has gone) are dropped: the next host knows nothing of their ids.
func (s *session) writeLoop(write func([]byte) error) {
	defer close(s.writerDone)
	failed := false
	for {
		f, ok := s.out.pop()
		if !ok {
			return
		}
		if !failed && f.epoch == s.epoch.Load() {
			if err := write(f.buf); err != nil {
				log.Printf("%s: write: %v", s.name, err)
				failed = true
				if s.onWriteError != nil {
					s.onWriteError(err)
				}
			}
		}
		if f.sent != nil {
			close(f.sent)
		}
	}
}

func (s *session) sendHeader(epoch uint64, hdr any) {
	s.sendHeaderNotify(epoch, hdr, nil)
}

func (s *session) sendHeaderNotify(epoch uint64, hdr any, sent chan struct{}) {
	b, err := json.Marshal(hdr)
	if err != nil || len(b) > maxHeader {
		// Only a result too large for one header gets here; the host still needs a final answer.
		log.Printf("%s: cannot encode a header (%d bytes, %v)", s.name, len(b), err)
		if m, ok := hdr.(map[string]any); ok && m["t"] == "ok" {
			s.sendHeaderNotify(epoch, errorHeader(m["id"], errf(codeInternal, "answer too large for one frame")), sent)
		} else if sent != nil {
			close(sent)
		}
		return
	}
	s.out.push(outFrame{buf: encodeFrame(b, nil), epoch: epoch, sent: sent})
}

// sendData blocks while too much data is queued; flow control keeps that short.
func (s *session) sendData(epoch uint64, id int64, ch string, p []byte) {
	s.out.push(outFrame{buf: encodeFrame(dataHeader(id, ch), p), epoch: epoch, data: true})
}

func errorHeader(id any, e *agentError) map[string]any {
	return map[string]any{"t": "error", "id": id, "code": e.code, "message": truncateMessage(e.msg)}
}

func (s *session) replyOK(epoch uint64, id int64, r any) {
	if r == nil {
		r = map[string]any{}
	}
	s.sendHeader(epoch, map[string]any{"t": "ok", "id": id, "r": r})
}

func (s *session) replyErr(epoch uint64, id int64, e *agentError) {
	s.sendHeader(epoch, errorHeader(id, e))
}
