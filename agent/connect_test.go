package main

import (
	"io"
	"net"
	"testing"
)

func TestConnectHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server answers only after the client's half close, so the answer proves the eof arrived.
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		got, _ := io.ReadAll(conn)
		conn.Write([]byte("got:" + string(got)))
	}()
	c := newClient(t)
	id := c.id()
	c.send(map[string]any{"t": "connect", "id": id, "port": ln.Addr().(*net.TCPAddr).Port}, nil)
	if f := c.next(id); f.t() != "started" {
		t.Fatalf("want started, got %v", f.h)
	}
	c.send(map[string]any{"t": "data", "id": id, "ch": "conn"}, []byte("ping"))
	c.send(map[string]any{"t": "data", "id": id, "ch": "conn"}, []byte("pong"))
	c.send(map[string]any{"t": "eof", "id": id, "ch": "conn"}, nil)
	end, frames := c.final(id)
	expectOK(t, end)
	if got := channelData(frames, "conn"); got != "got:pingpong" {
		t.Fatalf("received %q", got)
	}
	last := frames[len(frames)-1]
	for _, f := range frames {
		if f.t() == "eof" && f.str("ch") == "conn" {
			last = f
		}
	}
	if last.t() != "eof" {
		t.Fatalf("no eof from the guest side: %v", frames)
	}
}

func TestConnectRefusedAndCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	c := newClient(t)
	// A connection the server never ends: only a cancel finishes it.
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	id := c.id()
	c.send(map[string]any{"t": "connect", "id": id, "host": "127.0.0.1", "port": port}, nil)
	if f := c.next(id); f.t() != "started" {
		t.Fatalf("want started, got %v", f.h)
	}
	server := <-accepted
	defer server.Close()
	c.send(map[string]any{"t": "cancel", "id": id}, nil)
	expectErr(t, first(c.final(id)), codeCancelled)
	if n, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the guest connection stayed open after cancel: %d %v", n, err)
	}
	ln.Close() // nothing listens on port any more
	expectErr(t, first(c.request(map[string]any{"t": "connect", "port": port})), codeConnRefused)
	if ln6, err := net.Listen("tcp6", "[::1]:0"); err == nil { // only where the host has IPv6 loopback
		port6 := ln6.Addr().(*net.TCPAddr).Port
		ln6.Close()
		expectErr(t, first(c.request(map[string]any{"t": "connect", "host": "::1", "port": port6})), codeConnRefused)
	}
}

// A reset from the guest-side peer ends the stream with IO.
func TestConnectReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Write([]byte("bye"))
		conn.Close()
	}()
	c := newClient(t)
	end, _ := c.request(map[string]any{"t": "connect", "port": ln.Addr().(*net.TCPAddr).Port})
	if end.t() == "ok" {
		t.Fatalf("a reset connection ended ok: %v", end.h)
	}
	expectErr(t, end, codeIO)
}
