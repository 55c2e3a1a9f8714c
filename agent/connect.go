package main

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"
)

const connectTimeout = 10 * time.Second

type connectReq struct {
	Host *string `json:"host"`
	Port int64   `json:"port"`
}

func prepareConnect(hdr []byte) (streamSpec, *agentError) {
	var req connectReq
	if e := decodeRequest(hdr, &req); e != nil {
		return streamSpec{}, e
	}
	host := "127.0.0.1"
	if req.Host != nil {
		host = *req.Host
	}
	// An IP literal only: resolving names would make the agent depend on the guest's DNS.
	if net.ParseIP(host) == nil {
		return streamSpec{}, badRequest("host %q is not an IP address", host)
	}
	if req.Port < 1 || req.Port > 65535 {
		return streamSpec{}, badRequest("port %d is outside 1…65535", req.Port)
	}
	addr := net.JoinHostPort(host, strconv.FormatInt(req.Port, 10))
	return streamSpec{in: "conn", outs: []string{"conn"}, run: func(st *stream) { runConnect(st, addr) }}, nil
}

func runConnect(st *stream, addr string) {
	defer st.cancel(nil)
	ctx, stopDial := context.WithTimeout(context.Background(), connectTimeout)
	go func() {
		select {
		case <-st.done:
		case <-ctx.Done():
		}
		stopDial()
	}()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	stopDial()
	if c := st.cancelled(); c != nil {
		if err == nil {
			nc.Close()
		}
		st.finishErr(c)
		return
	}
	if err != nil {
		st.finishErr(asAgentError(err, codeIO))
		return
	}
	conn := nc.(*net.TCPConn)
	st.s.sendHeader(st.epoch, map[string]any{"t": "started", "id": st.id})

	// quit ends both directions: a cancel, or a failure in either one (a reset ends the connection).
	quit := make(chan struct{})
	var quitOnce, errOnce sync.Once
	var firstErr error
	stop := func(err error) {
		if err != nil {
			errOnce.Do(func() { firstErr = err })
		}
		quitOnce.Do(func() {
			conn.Close()
			close(quit)
		})
	}
	go func() {
		select {
		case <-st.done:
			stop(nil)
		case <-quit:
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // host → guest
		defer wg.Done()
		for {
			p, eof, ok := st.in.pop(quit)
			if !ok {
				return
			}
			if eof {
				if err := conn.CloseWrite(); err != nil {
					stop(err)
				}
				return
			}
			if _, err := conn.Write(p); err != nil {
				stop(err)
				return
			}
			st.consumed(len(p))
		}
	}()
	go func() { // guest → host
		defer wg.Done()
		if err := st.pump("conn", conn, false); err != nil {
			stop(err)
			return
		}
		if st.cancelled() == nil {
			st.s.sendHeader(st.epoch, map[string]any{"t": "eof", "id": st.id, "ch": "conn"})
		}
	}()
	wg.Wait()
	stop(nil)
	if c := st.cancelled(); c != nil {
		st.finishErr(c)
		return
	}
	if firstErr != nil {
		st.finishErr(errf(codeIO, "%v", firstErr))
		return
	}
	st.finishOK(nil)
}
