package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func execReqH(argv ...string) map[string]any {
	return map[string]any{"t": "exec", "argv": argv}
}

func TestExecStdio(t *testing.T) {
	c := newClient(t)
	id := c.id()
	c.send(map[string]any{"t": "exec", "id": id, "argv": []string{"sh", "-c", "cat; echo oops >&2; exit 3"}, "stdin": true}, nil)
	started := c.next(id)
	if started.t() != "started" || started.num("pid") <= 0 {
		t.Fatalf("want started with a pid, got %v", started.h)
	}
	c.send(map[string]any{"t": "data", "id": id, "ch": "stdin"}, []byte("hello "))
	c.send(map[string]any{"t": "data", "id": id, "ch": "stdin"}, []byte("world"))
	c.send(map[string]any{"t": "eof", "id": id, "ch": "stdin"}, nil)
	exit, frames := c.final(id)
	if exit.t() != "exit" || exit.h["code"] != float64(3) || exit.h["signal"] != nil || exit.h["timedOut"] != false {
		t.Fatalf("exit: %v", exit.h)
	}
	if out, errOut := channelData(frames, "stdout"), channelData(frames, "stderr"); out != "hello world" || errOut != "oops\n" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	acked := 0
	for _, f := range frames {
		if f.t() == "ack" && f.str("ch") == "stdin" {
			acked += int(f.num("n"))
		}
	}
	if acked != len("hello world") {
		t.Fatalf("stdin acknowledged %d bytes, want %d", acked, len("hello world"))
	}
}

func TestExecEnvironment(t *testing.T) {
	c := newClient(t)
	h := execReqH("sh", "-c", `echo "$PATH|$HOME|$USER|$LANG|$TERM|$FOO|$LANG2"; pwd; test -t 0 || cat`)
	h["env"] = map[string]string{"FOO": "bar", "TERM": "xterm", "LANG2": "x y"}
	exit, frames := c.request(h)
	if exit.h["code"] != float64(0) {
		t.Fatalf("exit: %v", exit.h)
	}
	acct := lookupAccount(uint32(os.Getuid()))
	wantDir := "/"
	if fi, err := os.Stat("/root"); os.Getuid() == 0 && err == nil && fi.IsDir() {
		wantDir = "/root"
	}
	want := defaultPath + "|" + acct.home + "|" + acct.name + "|C.UTF-8|xterm|bar|x y\n" + wantDir + "\n"
	if got := channelData(frames, "stdout"); got != want {
		t.Fatalf("got %q\nwant %q", got, want) // stdin is /dev/null: cat printed nothing
	}
	dir := t.TempDir()
	h = execReqH("pwd")
	h["cwd"] = dir
	_, frames = c.request(h)
	if got := channelData(frames, "stdout"); got != dir+"\n" {
		t.Fatalf("cwd: %q", got)
	}
}

func TestExecAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	c := newClient(t)
	h := execReqH("sh", "-c", "id -u; id -g; echo $HOME")
	h["uid"], h["gid"], h["cwd"] = 65534, 65534, "/"
	exit, frames := c.request(h)
	want := "65534\n65534\n" + lookupAccount(65534).home + "\n"
	if exit.h["code"] != float64(0) || channelData(frames, "stdout") != want {
		t.Fatalf("exit %v stdout %q stderr %q", exit.h, channelData(frames, "stdout"), channelData(frames, "stderr"))
	}
}

func TestExecStartFailures(t *testing.T) {
	c := newClient(t)
	expectErr(t, first(c.request(execReqH("no-such-program-banger"))), codeNotFound)
	expectErr(t, first(c.request(execReqH("/no/such/program"))), codeNotFound)
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	expectErr(t, first(c.request(execReqH(notExec))), codePermission)
	h := execReqH("true")
	h["cwd"] = "/no/such/dir"
	expectErr(t, first(c.request(h)), codeNotFound)
	h["cwd"] = notExec
	expectErr(t, first(c.request(h)), codeBadRequest)
	// PATH from the request's env is the one searched.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mytool"), []byte("#!/bin/sh\necho found\n"), 0o755)
	h = execReqH("mytool")
	h["env"] = map[string]string{"PATH": dir}
	exit, frames := c.request(h)
	if exit.h["code"] != float64(0) || channelData(frames, "stdout") != "found\n" {
		t.Fatalf("PATH lookup: %v %q", exit.h, channelData(frames, "stdout"))
	}
}

func TestExecSignal(t *testing.T) {
	c := newClient(t)
	id := c.id()
	c.send(map[string]any{"t": "exec", "id": id, "argv": []string{"sleep", "60"}}, nil)
	if f := c.next(id); f.t() != "started" {
		t.Fatalf("want started, got %v", f.h)
	}
	c.send(map[string]any{"t": "signal", "id": id, "signal": "BOGUS"}, nil) // ignored
	c.send(map[string]any{"t": "signal", "id": id, "signal": "TERM"}, nil)
	exit, _ := c.final(id)
	if exit.t() != "exit" || exit.h["code"] != nil || exit.h["signal"] != "TERM" || exit.h["timedOut"] != false {
		t.Fatalf("exit: %v", exit.h)
	}
}

func TestExecTimeout(t *testing.T) {
	c := newClient(t)
	h := execReqH("sh", "-c", "echo before; exec sleep 60")
	h["timeoutMs"] = 200
	exit, frames := c.request(h)
	if exit.h["signal"] != "KILL" || exit.h["timedOut"] != true || exit.h["code"] != nil {
		t.Fatalf("exit: %v", exit.h)
	}
	if channelData(frames, "stdout") != "before\n" {
		t.Fatalf("output before the timeout was lost: %q", channelData(frames, "stdout"))
	}
	h = execReqH("true")
	h["timeoutMs"] = 60000
	if exit, _ := c.request(h); exit.h["code"] != float64(0) || exit.h["timedOut"] != false {
		t.Fatalf("a quick command with a timeout: %v", exit.h)
	}
}

// A cancel kills the whole process group, so a background child cannot outlive the command.
func TestExecCancelKillsGroup(t *testing.T) {
	c := newClient(t)
	id := c.id()
	c.send(map[string]any{"t": "exec", "id": id, "argv": []string{"sh", "-c", "sleep 60 & echo $!; wait"}}, nil)
	var out string
	for !strings.Contains(out, "\n") {
		f := c.next(id)
		if f.t() == "data" {
			out += string(f.payload)
		} else if f.t() != "started" {
			t.Fatalf("unexpected %v", f.h)
		}
	}
	child, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || !alive(child) {
		t.Fatalf("background child %q not running", out)
	}
	c.send(map[string]any{"t": "cancel", "id": id}, nil)
	exit, _ := c.final(id)
	if exit.t() != "exit" || exit.h["signal"] != "KILL" {
		t.Fatalf("exit after cancel: %v", exit.h)
	}
	eventually(t, "the background child to die", func() bool { return !alive(child) })
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// exit comes only after every byte of output, even when there is much more than one window.
func TestExecDrainsBeforeExit(t *testing.T) {
	c := newClient(t)
	exit, frames := c.request(execReqH("sh", "-c", "head -c 1000000 /dev/zero; echo done >&2"))
	if exit.h["code"] != float64(0) {
		t.Fatalf("exit: %v", exit.h)
	}
	if n := len(channelData(frames, "stdout")); n != 1000000 {
		t.Fatalf("stdout: %d bytes before exit", n)
	}
	if channelData(frames, "stderr") != "done\n" {
		t.Fatalf("stderr: %q", channelData(frames, "stderr"))
	}
	for _, f := range frames {
		if len(f.payload) > maxPayload || f.t() == "data" && len(f.payload) == 0 {
			t.Fatalf("bad data frame of %d bytes", len(f.payload))
		}
	}
}

// The pipes, not the process, decide when exec ends: here the command exits at once while a child it left
// in its process group still writes.
func TestExecWaitsForPipes(t *testing.T) {
	c := newClient(t)
	exit, frames := c.request(execReqH("sh", "-c", "(sleep 0.2; echo late; echo late-err >&2) & exit 5"))
	if exit.h["code"] != float64(5) {
		t.Fatalf("exit: %v", exit.h)
	}
	if channelData(frames, "stdout") != "late\n" || channelData(frames, "stderr") != "late-err\n" {
		t.Fatalf("exit came before the pipes drained: stdout %q stderr %q", channelData(frames, "stdout"), channelData(frames, "stderr"))
	}
}
