package main

import (
	"encoding/json"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	protocolVersion = 1
	maxStreams      = 64
)

// A session is one host conversation: a vsock connection, stdin/stdout, or one opening of the serial
// port (which outlives host reconnects; each reconnect moves it to a new epoch).
type session struct {
	name         string
	serial       bool // a hello cancels the streams of whichever host spoke before
	sys          *sysOps
	out          *outQueue
	writerDone   chan struct{}
	onWriteError func(error)

	epoch        atomic.Uint64
	readyPending atomic.Int32
	work         sync.WaitGroup // request goroutines, waited for at shutdown

	mu      sync.Mutex
	streams map[int64]*stream
}

func newSession(name string, serial bool, sys *sysOps) *session {
	return &session{
		name:       name,
		serial:     serial,
		sys:        sys,
		out:        newOutQueue(),
		writerDone: make(chan struct{}),
		streams:    map[int64]*stream{},
	}
}

// start launches the writer and announces the agent, as every transport does when it opens.
func (s *session) start(write func([]byte) error) {
	go s.writeLoop(write)
	s.sendReady()
}

func (s *session) sendReady() {
	s.readyPending.Add(1)
	sent := make(chan struct{})
	s.sendHeaderNotify(s.epoch.Load(), map[string]any{
		"t": "ready", "id": 0, "version": protocolVersion, "agentVersion": agentVersion, "bootId": bootID(),
	}, sent)
	go func() {
		<-sent
		s.readyPending.Add(-1)
	}()
}

// serve reads and dispatches frames until the transport reports an error, which it returns.
func (s *session) serve(fr *frameReader) error {
	for {
		f, err := fr.next()
		if err != nil {
			return err
		}
		s.dispatch(f)
	}
}

// resetStreams starts a new epoch: the streams of the previous host are cancelled and everything they
// (or anything else already queued) would still send is dropped.
func (s *session) resetStreams(why string) {
	s.mu.Lock()
	old := s.streams
	s.streams = map[int64]*stream{}
	s.epoch.Add(1)
	s.mu.Unlock()
	if len(old) > 0 {
		log.Printf("%s: %s: cancelling %d streams", s.name, why, len(old))
	}
	for _, st := range old {
		st.cancel(errf(codeCancelled, "%s", why))
	}
}

// shutdown ends a session whose transport is gone or closing: streams are cancelled, their final
// answers are given a moment to be written, then the writer stops.
func (s *session) shutdown(grace time.Duration) {
	s.mu.Lock()
	for _, st := range s.streams {
		st.cancel(errf(codeCancelled, "the connection closed"))
	}
	s.mu.Unlock()
	deadline := time.Now().Add(grace)
	waitTimeout(func() { s.work.Wait() }, time.Until(deadline))
	s.out.close()
	waitTimeout(func() { <-s.writerDone }, time.Until(deadline))
}

func waitTimeout(f func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		f()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (s *session) lookup(id int64) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[id]
}

type chField struct {
	Ch     string `json:"ch"`
	N      int64  `json:"n"`
	Signal string `json:"signal"`
}

func (s *session) dispatch(f frame) {
	t, id, ok := parseEnvelope(f.header)
	if !ok {
		log.Printf("%s: dropped a frame without a valid id", s.name)
		return
	}
	ep := s.epoch.Load()
	var c chField
	switch t {
	case "data", "eof", "ack", "signal":
		if json.Unmarshal(f.header, &c) != nil {
			log.Printf("%s: dropped a malformed %s frame for id %d", s.name, t, id)
			return
		}
	}
	switch t {
	case "data":
		if st := s.lookup(id); st != nil && len(f.payload) > 0 {
			st.deliver(c.Ch, f.payload)
		}
	case "eof":
		if st := s.lookup(id); st != nil {
			st.deliverEOF(c.Ch)
		}
	case "ack":
		if st := s.lookup(id); st != nil && c.N > 0 {
			st.ack(c.Ch, c.N)
		}
	case "cancel":
		if st := s.lookup(id); st != nil {
			st.cancel(errf(codeCancelled, "cancelled by the host"))
		}
	case "signal":
		if st := s.lookup(id); st != nil {
			st.signal(c.Signal)
		}
	case "hello":
		s.hello(id, f.header)
	default:
		if id == 0 {
			s.replyErr(ep, 0, badRequest("request %q needs an id of at least 1", t))
			return
		}
		if spec, e, isStream := prepareStream(t, f.header); isStream {
			if e != nil {
				s.replyErr(ep, id, e)
				return
			}
			s.startStream(ep, id, spec)
			return
		}
		h := unaryHandler(t)
		if h == nil {
			s.replyErr(ep, id, badRequest("unknown message type %q", t))
			return
		}
		s.work.Add(1)
		go func() {
			defer s.work.Done()
			if r, e := h(s, ep, id, f.header); e != nil {
				s.replyErr(ep, id, e)
			} else if r != nil {
				s.replyOK(ep, id, r)
			}
		}()
	}
}

func prepareStream(t string, hdr []byte) (streamSpec, *agentError, bool) {
	var spec streamSpec
	var e *agentError
	switch t {
	case "exec":
		spec, e = prepareExec(hdr)
	case "put":
		spec, e = preparePut(hdr)
	case "get":
		spec, e = prepareGet(hdr)
	case "connect":
		spec, e = prepareConnect(hdr)
	default:
		return spec, nil, false
	}
	return spec, e, true
}

// A unary handler returns the `r` of its ok, or an error; (nil, nil) means it answered by itself.
type unaryFunc func(s *session, epoch uint64, id int64, hdr []byte) (any, *agentError)

func unaryHandler(t string) unaryFunc {
	switch t {
	case "health":
		return handleHealth
	case "ports":
		return handlePorts
	case "stats":
		return handleStats
	case "sync":
		return handleSync
	case "poweroff":
		return handlePoweroff
	case "set-hostname":
		return handleSetHostname
	case "set-clock":
		return handleSetClock
	case "set-network":
		return handleSetNetwork
	}
	return nil
}

func (s *session) startStream(ep uint64, id int64, spec streamSpec) {
	st := newStream(s, ep, id, spec)
	s.mu.Lock()
	_, dup := s.streams[id]
	n := len(s.streams)
	if !dup && n < maxStreams {
		s.streams[id] = st
	}
	s.mu.Unlock()
	switch {
	case dup:
		s.replyErr(ep, id, badRequest("id %d is already in use by an open stream", id))
	case n >= maxStreams:
		s.replyErr(ep, id, errf(codeTooMany, "%d streams are open already", maxStreams))
	default:
		s.work.Add(1)
		go func() {
			defer s.work.Done()
			spec.run(st)
		}()
	}
}

func (s *session) hello(id int64, hdr []byte) {
	var req struct {
		Version *int64  `json:"version"`
		Nonce   *string `json:"nonce"`
	}
	if e := decodeRequest(hdr, &req); e != nil {
		s.replyErr(s.epoch.Load(), id, e)
		return
	}
	if req.Version == nil || *req.Version != protocolVersion {
		s.replyErr(s.epoch.Load(), id, errf(codeUnsupported, "this agent speaks protocol version %d only", protocolVersion))
		return
	}
	if req.Nonce == nil {
		s.replyErr(s.epoch.Load(), id, badRequest("hello needs a nonce"))
		return
	}
	if s.serial {
		s.resetStreams("a host said hello")
	}
	s.replyOK(s.epoch.Load(), id, map[string]any{
		"version": protocolVersion, "agentVersion": agentVersion, "nonce": *req.Nonce,
		"bootId": bootID(), "pid": os.Getpid(),
	})
}

var signalsByName = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL,
	"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
}
