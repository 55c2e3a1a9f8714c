package main

import (
	"bytes"
	"errors"
	"log"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock moves only when a test advances it; every After is also reported on armed, so that a test
// knows when the loop has set a timer (and for how long) before it advances.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	armed   chan time.Duration
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1700000000, 0), armed: make(chan time.Duration, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	c.mu.Unlock()
	c.armed <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
		} else {
			w.ch <- c.now
		}
	}
	c.waiters = kept
}

// fakeProcs plays the kernel's process table for the supervisor: started services, queued exits, and
// a count of children still alive.
type fakeProcs struct {
	mu       sync.Mutex
	nextPid  int
	children int
	exits    []fakeExit
	startErr error
	started  chan []string
	kills    chan syscall.Signal
	synced   chan struct{}
	sigchld  chan os.Signal
}

type fakeExit struct {
	pid int
	ws  syscall.WaitStatus
}

func newFakeProcs() *fakeProcs {
	return &fakeProcs{
		nextPid: 100, started: make(chan []string, 64), kills: make(chan syscall.Signal, 8),
		synced: make(chan struct{}, 1), sigchld: make(chan os.Signal, 1),
	}
}

func (p *fakeProcs) ops() initOps {
	return initOps{
		start: func(argv, env []string) (int, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.startErr != nil {
				p.started <- nil
				return 0, p.startErr
			}
			p.nextPid++
			p.children++
			p.started <- argv
			return p.nextPid, nil
		},
		reap: func() (int, syscall.WaitStatus, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch {
			case len(p.exits) > 0:
				e := p.exits[0]
				p.exits = p.exits[1:]
				return e.pid, e.ws, nil
			case p.children > 0:
				return 0, 0, nil
			}
			return 0, 0, syscall.ECHILD
		},
		killAll: func(sig syscall.Signal) error { p.kills <- sig; return nil },
		sync:    func() { p.synced <- struct{}{} },
	}
}

// exit makes a child exit and delivers SIGCHLD, coalesced like the real signal.
func (p *fakeProcs) exit(pid int, ws syscall.WaitStatus, child bool) {
	p.mu.Lock()
	p.exits = append(p.exits, fakeExit{pid, ws})
	if child {
		p.children--
	}
	p.mu.Unlock()
	select {
	case p.sigchld <- syscall.SIGCHLD:
	default:
	}
}

func exitStatus(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// receive takes the next value from ch, failing the test after waitLimit.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// none fails if ch holds a value: what would have been sent by events the loop has already handled.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	default:
	}
}

type initHarness struct {
	procs *fakeProcs
	clock *fakeClock
	logs  *lockedBuffer
	stop  chan os.Signal
	done  chan struct{}
}

func newInitHarness() *initHarness {
	return &initHarness{procs: newFakeProcs(), clock: newFakeClock(), logs: &lockedBuffer{}, stop: make(chan os.Signal, 1), done: make(chan struct{})}
}

// run starts the supervisor loop; the test's end stops it if the test did not.
func (h *initHarness) run(t *testing.T, services ...*service) {
	in := &initProc{ops: h.procs.ops(), clock: h.clock, log: log.New(h.logs, "", 0), services: services, env: []string{"PATH=" + defaultPath}}
	go func() {
		in.run(h.procs.sigchld, h.stop)
		close(h.done)
	}()
	t.Cleanup(func() {
		select {
		case h.stop <- syscall.SIGTERM:
		default:
		}
		h.procs.mu.Lock()
		h.procs.children = 0
		h.procs.mu.Unlock()
		h.procs.exit(0, 0, false)
		<-h.done
	})
}

func startInit(t *testing.T, services ...*service) *initHarness {
	h := newInitHarness()
	h.run(t, services...)
	return h
}

func agentAndSshd() []*service {
	return []*service{{name: "agent", argv: []string{"/agent"}}, {name: "sshd", argv: []string{"/sshd", "-D"}}}
}

func TestInitRestartsAServiceOneSecondAfterItExits(t *testing.T) {
	h := startInit(t, agentAndSshd()...)
	if got := receive(t, h.procs.started, "the agent"); got[0] != "/agent" {
		t.Fatalf("started %v first", got)
	}
	if got := receive(t, h.procs.started, "sshd"); got[0] != "/sshd" {
		t.Fatalf("started %v second", got)
	}

	// An orphan's exit is reaped and changes nothing; the agent's (pid 101) sets a 1 s timer.
	h.procs.exit(555, exitStatus(0), false)
	h.procs.exit(101, exitStatus(1), true)
	if d := receive(t, h.clock.armed, "the restart timer"); d != restartDelay {
		t.Fatalf("restart timer %v, want %v", d, restartDelay)
	}
	none(t, h.clock.armed, "timer")
	h.clock.Advance(restartDelay - time.Millisecond)
	none(t, h.procs.started, "start before the delay")
	h.clock.Advance(time.Millisecond)
	if got := receive(t, h.procs.started, "the agent's restart"); got[0] != "/agent" {
		t.Fatalf("restarted %v", got)
	}
	none(t, h.procs.started, "start")

	// Killed by a signal: restarted the same way.
	h.procs.exit(102, syscall.WaitStatus(syscall.SIGKILL), true)
	if d := receive(t, h.clock.armed, "the restart timer"); d != restartDelay {
		t.Fatalf("restart timer %v", d)
	}
	h.clock.Advance(restartDelay)
	if got := receive(t, h.procs.started, "sshd's restart"); got[0] != "/sshd" {
		t.Fatalf("restarted %v", got)
	}
	logs := h.logs.String()
	for _, want := range []string{"agent (pid 101) exited with status 1; restarting in 1s", "sshd (pid 102) was killed by SIGKILL"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestInitRetriesAServiceThatCannotStart(t *testing.T) {
	h := newInitHarness()
	h.procs.startErr = syscall.ENOENT
	h.run(t, &service{name: "agent", argv: []string{"/agent"}})
	if got := receive(t, h.procs.started, "a failed start"); got != nil {
		t.Fatalf("started %v", got)
	}
	if d := receive(t, h.clock.armed, "the retry timer"); d != restartDelay {
		t.Fatalf("retry timer %v", d)
	}
	h.procs.mu.Lock()
	h.procs.startErr = nil
	h.procs.mu.Unlock()
	h.clock.Advance(restartDelay)
	if got := receive(t, h.procs.started, "the retry"); got == nil || got[0] != "/agent" {
		t.Fatalf("retried %v", got)
	}
	if logs, want := h.logs.String(), "agent: cannot start /agent: no such file or directory; retrying in 1s"; !strings.Contains(logs, want) {
		t.Fatalf("log lacks %q:\n%s", want, logs)
	}
}

func TestInitShutdownTerminatesEveryProcessAndStopsRestarting(t *testing.T) {
	h := startInit(t, agentAndSshd()...)
	receive(t, h.procs.started, "the agent")
	receive(t, h.procs.started, "sshd")
	h.stop <- syscall.SIGUSR2
	if sig := receive(t, h.procs.kills, "kill -1"); sig != syscall.SIGTERM {
		t.Fatalf("first kill -1 with %v", sig)
	}
	if d := receive(t, h.clock.armed, "the grace timer"); d != stopGrace {
		t.Fatalf("grace %v", d)
	}
	h.procs.exit(101, syscall.WaitStatus(syscall.SIGTERM), true)
	h.procs.exit(102, exitStatus(0), true)
	receive(t, h.done, "the end of run")
	receive(t, h.procs.synced, "sync")
	none(t, h.procs.kills, "SIGKILL")
	none(t, h.procs.started, "restart")
	none(t, h.clock.armed, "restart timer")
}

func TestInitShutdownKillsWhatIgnoresSIGTERM(t *testing.T) {
	h := startInit(t, &service{name: "agent", argv: []string{"/agent"}})
	receive(t, h.procs.started, "the agent")
	h.stop <- syscall.SIGTERM
	receive(t, h.procs.kills, "SIGTERM")
	receive(t, h.clock.armed, "the grace timer")
	h.clock.Advance(stopGrace - time.Millisecond)
	none(t, h.procs.kills, "SIGKILL before the grace period ends")
	h.clock.Advance(time.Millisecond)
	if sig := receive(t, h.procs.kills, "SIGKILL"); sig != syscall.SIGKILL {
		t.Fatalf("second kill -1 with %v", sig)
	}
	if d := receive(t, h.clock.armed, "the kill timer"); d != killGrace {
		t.Fatalf("kill grace %v", d)
	}
	h.procs.exit(101, syscall.WaitStatus(syscall.SIGKILL), true)
	receive(t, h.done, "the end of run")
	receive(t, h.procs.synced, "sync")
}

func TestInitShutdownGoesOnWhenProcessesSurviveSIGKILL(t *testing.T) {
	h := startInit(t, &service{name: "agent", argv: []string{"/agent"}})
	receive(t, h.procs.started, "the agent")
	h.stop <- syscall.SIGINT
	receive(t, h.clock.armed, "the grace timer")
	h.clock.Advance(stopGrace)
	receive(t, h.clock.armed, "the kill timer")
	h.clock.Advance(killGrace)
	receive(t, h.done, "the end of run")
	receive(t, h.procs.synced, "sync")
	if logs := h.logs.String(); !strings.Contains(logs, "processes left after SIGKILL") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestInitServices(t *testing.T) {
	has := func(paths ...string) func(string) bool {
		return func(p string) bool {
			for _, q := range paths {
				if p == q {
					return true
				}
			}
			return false
		}
	}
	argvs := func(s []*service) [][]string {
		var out [][]string
		for _, x := range s {
			out = append(out, x.argv)
		}
		return out
	}
	sshd := func(p string) []string {
		return []string{p, "-D", "-e", "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
			"-o", "HostKey=/etc/ssh/ssh_host_ed25519_key"}
	}
	for _, tc := range []struct {
		name   string
		opts   initOptions
		exists func(string) bool
		want   [][]string
	}{
		{"no sshd", initOptions{}, has(), [][]string{{"/self"}}},
		{"debian", initOptions{}, has("/usr/sbin/sshd", "/sbin/sshd"), [][]string{{"/self"}, sshd("/usr/sbin/sshd")}},
		{"elsewhere", initOptions{}, has("/sbin/sshd"), [][]string{{"/self"}, sshd("/sbin/sshd")}},
		{"--no-sshd", initOptions{noSshd: true}, has("/usr/sbin/sshd"), [][]string{{"/self"}}},
		{"test child", initOptions{noSshd: true, child: []string{"/bin/sh", "-c", "x"}}, has(), [][]string{{"/bin/sh", "-c", "x"}}},
	} {
		s, err := initServices(tc.opts, "/self", tc.exists)
		if err != nil || !reflect.DeepEqual(argvs(s), tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, argvs(s), err, tc.want)
		}
	}
	s, err := initServices(initOptions{noSshd: true, child: []string{"sh", "-c", "x"}}, "/self", has())
	if err != nil || !strings.HasSuffix(s[0].argv[0], "/sh") {
		t.Errorf("child looked up in PATH: %v %v", s[0].argv, err)
	}
	if _, err := initServices(initOptions{child: []string{"no-such-command-here"}}, "/self", has()); err == nil {
		t.Error("a missing child command is accepted")
	}
}

func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"HOME=/", "PATH=/bin", "BANGER_X=1", "TERM=vt100"})
	want := []string{"BANGER_X=1", "TERM=vt100", "PATH=" + defaultPath, "HOME=/root"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = childEnv([]string{"HOME=/"})
	want = []string{"PATH=" + defaultPath, "HOME=/root", "TERM=linux"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A failed mount is logged and the rest goes on; what is mounted or present already is left alone.
func TestSetupFilesystems(t *testing.T) {
	var calls []string
	present := map[string]bool{"/dev/fd": true, "/dev/ptmx": true}
	fs := fsOps{
		mkdirAll: func(p string, mode os.FileMode) error {
			calls = append(calls, "mkdir "+p+" "+mode.String())
			return nil
		},
		isMountPoint: func(p string) bool { return p == "/sys" },
		mount: func(source, target, fstype string, flags uintptr, data string) error {
			calls = append(calls, "mount "+fstype+" "+target+" "+data)
			if target == "/dev/shm" {
				return syscall.EPERM
			}
			return nil
		},
		exists: func(p string) bool { return present[p] },
		symlink: func(target, link string) error {
			calls = append(calls, "ln "+link+" -> "+target)
			if link == "/dev/stdout" {
				return errors.New("read-only")
			}
			return nil
		},
	}
	var logs bytes.Buffer
	setupFilesystems(fs, log.New(&logs, "", 0))
	want := []string{
		"mkdir /proc -rwxr-xr-x", "mount proc /proc ",
		"mkdir /sys -rwxr-xr-x",
		"mkdir /dev/pts -rwxr-xr-x", "mount devpts /dev/pts ptmxmode=0666,mode=0620,gid=5",
		"mkdir /dev/shm -rwxr-xr-x", "mount tmpfs /dev/shm mode=1777",
		"mkdir /run -rwxr-xr-x", "mount tmpfs /run mode=0755",
		"ln /dev/stdin -> /proc/self/fd/0", "ln /dev/stdout -> /proc/self/fd/1", "ln /dev/stderr -> /proc/self/fd/2",
	}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("calls:\n%q\nwant\n%q", calls, want)
	}
	wantLogs := "mount tmpfs on /dev/shm: operation not permitted\nsymlink /dev/stdout: read-only\n"
	if logs.String() != wantLogs {
		t.Fatalf("logs %q, want %q", logs.String(), wantLogs)
	}
}

func TestIsMountPoint(t *testing.T) {
	if !isMountPoint("/") || !isMountPoint("/proc") {
		t.Error("/ or /proc is not a mount point")
	}
	if isMountPoint(t.TempDir()) || isMountPoint("/no/such/dir") {
		t.Error("a plain directory is a mount point")
	}
}

// The test binary is not PID 1's program, so health names PID 1 by its command name.
func TestInitName(t *testing.T) {
	want := "unknown"
	if b, err := os.ReadFile("/proc/1/comm"); err == nil {
		want = strings.TrimSpace(string(b))
	}
	if got := initName(); got != want || got == "banger-agent" {
		t.Fatalf("initName %q, want %q", got, want)
	}
}

// --init refuses to run anywhere but as PID 1: its shutdown signals every process it can.
func TestRunInitRefusesWhenNotPID1(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("running as PID 1")
	}
	if code := runInit(initOptions{noMounts: true, noReboot: true, noSshd: true}); code != 2 {
		t.Fatalf("exit code %d", code)
	}
}
