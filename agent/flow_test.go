package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Without acks the agent stops at exactly one window; acks let the rest through.
func TestFlowControlWindow(t *testing.T) {
	const size = 3*windowSize + 12345
	for _, kind := range []string{"exec", "get"} {
		t.Run(kind, func(t *testing.T) {
			c := newClient(t)
			c.autoAck = false
			id := c.id()
			if kind == "exec" {
				c.send(map[string]any{"t": "exec", "id": id, "argv": []string{"head", "-c", "798777", "/dev/zero"}}, nil)
			} else {
				path := filepath.Join(t.TempDir(), "f")
				os.WriteFile(path, bytes.Repeat([]byte{'z'}, size), 0o644)
				c.send(map[string]any{"t": "get", "id": id, "path": path}, nil)
			}
			ch := map[string]string{"exec": "stdout", "get": "file"}[kind]
			received := 0
			for received < windowSize {
				f := c.next(id)
				switch f.t() {
				case "data":
					received += len(f.payload)
				case "started", "meta":
				default:
					t.Fatalf("before the window filled: %v", f.h)
				}
			}
			if received != windowSize {
				t.Fatalf("received %d bytes without acks, window is %d", received, windowSize)
			}
			// Nothing more may come until the host acknowledges; a short look is enough to catch a leak.
			if f, ok := c.nextWithin(id, 200*time.Millisecond); ok {
				t.Fatalf("agent sent beyond the window: %v (%d bytes)", f.h, len(f.payload))
			}
			c.send(map[string]any{"t": "ack", "id": id, "ch": ch, "n": received}, nil)
			for {
				f := c.next(id)
				if f.t() == "data" {
					received += len(f.payload)
					c.send(map[string]any{"t": "ack", "id": id, "ch": ch, "n": len(f.payload)}, nil)
					continue
				}
				if f.t() != "ok" && f.t() != "exit" {
					t.Fatalf("final answer: %v", f.h)
				}
				break
			}
			if received != size {
				t.Fatalf("received %d bytes in all, want %d", received, size)
			}
		})
	}
}

// A host that overruns the window fails its stream instead of growing the agent's memory. The process
// never reads stdin, so once its pipe is full everything the host sends stays queued in the agent.
func TestFlowControlOverrun(t *testing.T) {
	c := newClient(t)
	id := c.id()
	c.send(map[string]any{"t": "exec", "id": id, "argv": []string{"sleep", "60"}, "stdin": true}, nil)
	chunk := make([]byte, 65536)
	for i := 0; i < 12; i++ { // 768 KiB: the pipe holds 64 KiB, the window 256 KiB
		c.send(map[string]any{"t": "data", "id": id, "ch": "stdin"}, chunk)
	}
	end, _ := c.final(id)
	expectErr(t, end, codeBadRequest)
}
