package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// put sends content in window-sized bursts, waiting for the agent's acks between them as a host must.
func (c *client) put(h map[string]any, content []byte) tframe {
	c.t.Helper()
	id := c.id()
	h["t"], h["id"] = "put", id
	c.send(h, nil)
	unacked := 0
	for len(content) > 0 {
		n := len(content)
		if n > 65536 {
			n = 65536
		}
		for unacked+n > windowSize {
			f := c.next(id)
			if f.t() != "ack" {
				return f // an early answer: an error before eof
			}
			unacked -= int(f.num("n"))
		}
		c.send(map[string]any{"t": "data", "id": id, "ch": "file"}, content[:n])
		unacked += n
		content = content[n:]
	}
	c.send(map[string]any{"t": "eof", "id": id, "ch": "file"}, nil)
	for {
		f := c.next(id)
		if f.t() != "ack" {
			return f
		}
	}
}

func TestPutGet(t *testing.T) {
	c := newClient(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "file.bin")
	content := bytes.Repeat([]byte("0123456789abcdef"), 50000) // 800000 bytes: several windows
	h := map[string]any{"path": path, "mode": 0o640}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65533
		h["mode"] = 0o4755 // setuid survives only because chmod follows chown
	}
	h["uid"], h["gid"] = uid, gid
	if r := expectOK(t, c.put(h, content)); r["bytes"] != float64(len(content)) {
		t.Fatalf("put answer: %v", r)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	wantMode := uint32(h["mode"].(int))
	if st.Mode&0o7777 != wantMode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("mode %o uid %d gid %d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Fatalf("content differs (%d bytes)", len(got))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}

	// Overwrite in place with something short, then read it back.
	expectOK(t, c.put(map[string]any{"path": path, "mode": 0o600}, []byte("short")))
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 || fi.Size() != 5 {
		t.Fatalf("after overwrite: %v %d", fi.Mode(), fi.Size())
	}

	// get: meta, data, ok.
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Chmod(path, 0o2751) // os.Chmod would drop setgid, which is spelled differently in Go
	end, frames := c.request(map[string]any{"t": "get", "path": path})
	if r := expectOK(t, end); r["bytes"] != float64(len(content)) {
		t.Fatalf("get answer: %v", r)
	}
	meta := frames[0]
	if meta.t() != "meta" || meta.num("mode") != 0o2751 || meta.num("size") != float64(len(content)) ||
		int(meta.num("uid")) != os.Getuid() || int(meta.num("gid")) != os.Getgid() {
		t.Fatalf("meta: %v", meta.h)
	}
	if got := channelData(frames, "file"); got != string(content) {
		t.Fatalf("get returned %d bytes", len(got))
	}
	end, frames = c.request(map[string]any{"t": "get", "path": filepath.Join(dir, "empty")})
	expectErr(t, end, codeNotFound)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	end, frames = c.request(map[string]any{"t": "get", "path": filepath.Join(dir, "empty")})
	if expectOK(t, end)["bytes"] != float64(0) || len(frames) != 1 {
		t.Fatalf("empty file: %v %v", end.h, frames)
	}
}

func TestPutRefusals(t *testing.T) {
	c := newClient(t)
	dir := t.TempDir()
	expectErr(t, c.put(map[string]any{"path": filepath.Join(dir, "missing", "f")}, []byte("x")), codeNotFound)
	expectErr(t, c.put(map[string]any{"path": dir}, []byte("x")), codeBadRequest)
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	expectErr(t, c.put(map[string]any{"path": filepath.Join(dir, "plain", "f")}, []byte("x")), codeNotFound)

	deep := filepath.Join(dir, "a", "b", "c.txt")
	expectOK(t, c.put(map[string]any{"path": deep, "mkdirs": true}, []byte("deep")))
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v %v", d, fi, err)
		}
	}
	if fi, _ := os.Stat(deep); fi.Mode().Perm() != 0o644 {
		t.Fatalf("default mode: %v", fi.Mode())
	}

	// A cancelled put leaves nothing behind, not even its temporary file.
	id := c.id()
	target := filepath.Join(dir, "cancelled")
	c.send(map[string]any{"t": "put", "id": id, "path": target}, nil)
	c.send(map[string]any{"t": "data", "id": id, "ch": "file"}, []byte("partial"))
	if f := c.next(id); f.t() != "ack" {
		t.Fatalf("want ack, got %v", f.h)
	}
	c.send(map[string]any{"t": "cancel", "id": id}, nil)
	expectErr(t, first(c.final(id)), codeCancelled)
	matches, _ := filepath.Glob(filepath.Join(dir, ".cancelled*"))
	if _, err := os.Stat(target); err == nil || len(matches) != 0 {
		t.Fatalf("cancelled put left %v %v", target, matches)
	}
}

func TestGetRefusals(t *testing.T) {
	c := newClient(t)
	dir := t.TempDir()
	expectErr(t, first(c.request(map[string]any{"t": "get", "path": dir})), codeBadRequest)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	expectErr(t, first(c.request(map[string]any{"t": "get", "path": fifo})), codeBadRequest) // and no hang
	expectErr(t, first(c.request(map[string]any{"t": "get", "path": "/dev/null"})), codeBadRequest)
}
