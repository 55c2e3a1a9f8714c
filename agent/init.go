package main

// `banger-agent --init`: PID 1 for guests whose image has no init system (busybox, alpine, distroless,
// plain debian/ubuntu container images). It mounts the API filesystems, runs the agent itself (and sshd
// when the image has one) as children that it restarts when they exit, reaps every orphan, and powers the
// machine off on SIGTERM, SIGUSR2 (the agent's `poweroff`), SIGINT (ctrl-alt-del) or SIGPWR.
//
// The agent runs as a child rather than inside PID 1 because reaping with wait4(-1) in a process that
// also waits for its own commands through os/exec races: PID 1 could steal an exec's exit status.

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	restartDelay = time.Second     // systemd's Restart=always RestartSec=1, which the agent's unit uses
	stopGrace    = 2 * time.Second // between SIGTERM and SIGKILL to every process at shutdown
	killGrace    = 2 * time.Second // for SIGKILLed processes to be reaped before the power goes
	sshHostKey   = "/etc/ssh/ssh_host_ed25519_key"
)

// sshdPaths are where images keep sshd (debian/ubuntu/alpine: /usr/sbin), in the order they are tried.
var sshdPaths = []string{"/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"}

type initOptions struct {
	noMounts bool     // mount nothing and create nothing (tests run on a host's /dev)
	noReboot bool     // exit 0 after the shutdown sequence instead of powering off (tests)
	noSshd   bool     // do not start the image's sshd (tests: the host's own must not be doubled)
	child    []string // run this instead of the agent (tests); argv[0] is looked up in PATH without a slash
}

// runInit is `banger-agent --init`. It returns only when it fails to start or, with noReboot, after
// shutting down; otherwise the machine powers off.
func runInit(opts initOptions) int {
	logger := log.New(os.Stderr, "banger-agent init: ", 0)
	if os.Getpid() != 1 {
		// Its shutdown signals every process it may signal (kill -1): only sane as the namespace's init.
		logger.Print("--init must run as PID 1 (the guest's init, or of a new PID namespace)")
		return 2
	}
	ensureConsole()
	// Before any child exists, so that no exit and no shutdown request is missed.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGPWR)
	// Ctrl-alt-del then sends SIGINT to PID 1 instead of resetting the machine at once (EINVAL, and no
	// effect, in a PID namespace other than the first).
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_CAD_OFF)

	if !opts.noMounts {
		setupFilesystems(realFsOps(), logger)
	}
	services, err := initServices(opts, selfExePath(), fileExists)
	if err != nil {
		logger.Print(err)
		return 2
	}
	for _, s := range services {
		if s.name == "sshd" {
			// sshd's privilege separation directory; /run is a fresh tmpfs.
			if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
				logger.Printf("sshd: %v", err)
			}
			os.Chmod("/run/sshd", 0o755)
		}
	}
	in := &initProc{ops: realInitOps(), clock: realClock{}, log: logger, services: services, env: childEnv(os.Environ())}
	in.run(sigchld, stop)
	if opts.noReboot {
		return 0
	}
	err = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	// PID 1 must not exit: the kernel would panic. Nothing is left to do but wait for the host.
	logger.Printf("power off: %v; halted", err)
	for {
		time.Sleep(time.Hour)
	}
}

// A service is a child that PID 1 keeps running.
type service struct {
	name      string
	argv      []string  // argv[0] is the program's path
	pid       int       // 0 while not running
	restartAt time.Time // when to start it again while not running; zero: at once
}

// initOps are what PID 1 does to processes and the machine; tests replace them (the real killAll, run
// by a test on a host, would signal every process of the host).
type initOps struct {
	start   func(argv, env []string) (int, error)
	reap    func() (int, syscall.WaitStatus, error) // wait4(-1, WNOHANG): pid 0 while children run, ECHILD when none
	killAll func(sig syscall.Signal) error
	sync    func()
}

// clock lets tests drive restart delays and shutdown deadlines without waiting.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type initProc struct {
	ops      initOps
	clock    clock
	log      *log.Logger
	services []*service
	env      []string
	stopping bool // shutting down: no more restarts
}

// run supervises the services until a shutdown signal, then takes every process down; the caller powers
// off. sigchld and stop carry the signals (tests send their own).
func (in *initProc) run(sigchld, stop <-chan os.Signal) {
	in.reapAll() // anything the initrd left behind, or that exited before the first signal
	in.startDue()
	var timer <-chan time.Time
	var armed time.Time // when timer fires; zero when there is none
	for {
		if next, ok := in.nextStart(); ok && !next.Equal(armed) {
			timer, armed = in.clock.After(next.Sub(in.clock.Now())), next
		}
		select {
		case <-sigchld:
			in.reapAll()
		case <-timer:
			timer, armed = nil, time.Time{}
			in.startDue()
		case sig := <-stop:
			in.shutdown(sig, sigchld)
			return
		}
	}
}

// reapAll collects every child that has exited and reports whether no child is left at all.
func (in *initProc) reapAll() bool {
	for {
		pid, ws, err := in.ops.reap()
		if err == syscall.ECHILD {
			return true
		}
		if err != nil {
			in.log.Printf("wait4: %v", err)
			return false
		}
		if pid <= 0 {
			return false
		}
		in.exited(pid, ws)
	}
}

// exited notes a reaped process: for a service, schedule its restart; orphans need nothing more.
func (in *initProc) exited(pid int, ws syscall.WaitStatus) {
	for _, s := range in.services {
		if s.pid != pid {
			continue
		}
		s.pid = 0
		if in.stopping {
			return
		}
		s.restartAt = in.clock.Now().Add(restartDelay)
		in.log.Printf("%s (pid %d) %s; restarting in %v", s.name, pid, describeExit(ws), restartDelay)
		return
	}
}

// startDue starts every service that is not running and whose restart time has come.
func (in *initProc) startDue() {
	if in.stopping {
		return
	}
	now := in.clock.Now()
	for _, s := range in.services {
		if s.pid != 0 || s.restartAt.After(now) {
			continue
		}
		pid, err := in.ops.start(s.argv, in.env)
		if err != nil {
			s.restartAt = now.Add(restartDelay)
			in.log.Printf("%s: cannot start %s: %v; retrying in %v", s.name, s.argv[0], err, restartDelay)
			continue
		}
		s.pid, s.restartAt = pid, time.Time{}
	}
}

// nextStart is the earliest pending restart.
func (in *initProc) nextStart() (time.Time, bool) {
	var next time.Time
	found := false
	for _, s := range in.services {
		if s.pid == 0 && !in.stopping && (!found || s.restartAt.Before(next)) {
			next, found = s.restartAt, true
		}
	}
	return next, found
}

// shutdown stops restarting, asks every process to terminate, kills what is left after stopGrace, and
// syncs. Processes keep being reaped throughout.
func (in *initProc) shutdown(sig os.Signal, sigchld <-chan os.Signal) {
	in.stopping = true
	name := sig.String()
	if s, ok := sig.(syscall.Signal); ok {
		name = "SIG" + signalName(s)
	}
	in.log.Printf("%s: stopping every process", name)
	if err := in.ops.killAll(syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		in.log.Printf("kill -TERM -1: %v", err)
	}
	if !in.waitNoChildren(sigchld, stopGrace) {
		in.log.Printf("processes left after %v: sending SIGKILL", stopGrace)
		if err := in.ops.killAll(syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			in.log.Printf("kill -KILL -1: %v", err)
		}
		if !in.waitNoChildren(sigchld, killGrace) {
			in.log.Printf("processes left after SIGKILL; going on")
		}
	}
	in.ops.sync()
}

// waitNoChildren reaps until no child is left (every process of the namespace descends from PID 1, so
// then no process is left) or until d has passed.
func (in *initProc) waitNoChildren(sigchld <-chan os.Signal, d time.Duration) bool {
	timeout := in.clock.After(d)
	for {
		if in.reapAll() {
			return true
		}
		select {
		case <-sigchld:
		case <-timeout:
			return in.reapAll()
		}
	}
}

func describeExit(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "was killed by SIG" + signalName(ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ws.ExitStatus())
}

// initServices are the agent (or the test's command) and, when the image has one, sshd.
func initServices(opts initOptions, self string, exists func(string) bool) ([]*service, error) {
	agent := []string{self}
	if len(opts.child) > 0 {
		agent = append([]string(nil), opts.child...)
		if !strings.Contains(agent[0], "/") {
			p, e := lookPath(agent[0], defaultPath)
			if e != nil {
				return nil, fmt.Errorf("child command: %s", e.msg)
			}
			agent[0] = p
		}
	}
	services := []*service{{name: "agent", argv: agent}}
	if opts.noSshd {
		return services, nil
	}
	for _, p := range sshdPaths {
		if exists(p) {
			services = append(services, &service{name: "sshd", argv: []string{
				p, "-D", "-e",
				"-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no", "-o", "HostKey=" + sshHostKey,
			}})
			break
		}
	}
	return services, nil
}

// childEnv is PID 1's environment (what the kernel and the initrd passed) with the agent's PATH,
// HOME=/root, and TERM=linux unless TERM is set.
func childEnv(base []string) []string {
	out := make([]string, 0, len(base)+3)
	hasTerm := false
	for _, kv := range base {
		switch {
		case strings.HasPrefix(kv, "PATH="), strings.HasPrefix(kv, "HOME="):
			continue
		case strings.HasPrefix(kv, "TERM="):
			hasTerm = true
		}
		out = append(out, kv)
	}
	out = append(out, "PATH="+defaultPath, "HOME=/root")
	if !hasTerm {
		out = append(out, "TERM=linux")
	}
	return out
}

// selfExePath is this program's path, to start the agent child under its own name (exec of
// /proc/self/exe would name the process "exe"). /proc/self/exe itself when the file was replaced.
func selfExePath() string {
	p, err := os.Readlink("/proc/self/exe")
	switch {
	case err == nil && !strings.HasSuffix(p, " (deleted)"):
		return p
	case err == nil:
		return "/proc/self/exe"
	case filepath.IsAbs(os.Args[0]):
		return os.Args[0] // no /proc: its mount failed
	}
	return "/proc/self/exe"
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func realInitOps() initOps {
	return initOps{
		start: startChild,
		reap: func() (int, syscall.WaitStatus, error) {
			var ws syscall.WaitStatus
			for {
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if err != syscall.EINTR {
					return pid, ws, err
				}
			}
		},
		killAll: func(sig syscall.Signal) error { return syscall.Kill(-1, sig) },
		sync:    syscall.Sync,
	}
}

// startChild starts a service in its own session, with stdin from /dev/null and PID 1's stdout and
// stderr (the console). PID 1 reaps it with wait4 like any other process.
func startChild(argv, env []string) (int, error) {
	files := []uintptr{0, 1, 2}
	if null, err := os.Open(os.DevNull); err == nil {
		defer null.Close()
		files[0] = null.Fd()
	}
	return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir: "/", Env: env, Files: files, Sys: &syscall.SysProcAttr{Setsid: true},
	})
}

// ensureConsole gives PID 1 the console as stdin, stdout and stderr when the kernel could not (no
// /dev/console in the initramfs): its log and its children's go there.
func ensureConsole() {
	var st syscall.Stat_t
	if syscall.Fstat(2, &st) == nil {
		return
	}
	fd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for target := 0; target <= 2; target++ {
		if target != fd {
			syscall.Dup3(fd, target, 0)
		}
	}
	if fd > 2 {
		syscall.Close(fd)
	}
}

// A mountSpec is one filesystem PID 1 mounts, on a directory it creates (0755) if missing.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// initMounts are what a container runtime or systemd would mount. /dev is the devtmpfs the initrd moved
// in. Since Linux 4.7 every devpts mount is a new instance; gid 5 is "tty" on debian, ubuntu and alpine.
var initMounts = []mountSpec{
	{"proc", "/proc", "proc", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
	{"devpts", "/dev/pts", "devpts", syscall.MS_NOSUID | syscall.MS_NOEXEC, "ptmxmode=0666,mode=0620,gid=5"},
	{"tmpfs", "/dev/shm", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=0755"},
}

// devLinks are the /dev symlinks udev or a container runtime would make, created only when missing.
var devLinks = []struct{ link, target string }{
	{"/dev/fd", "/proc/self/fd"},
	{"/dev/stdin", "/proc/self/fd/0"},
	{"/dev/stdout", "/proc/self/fd/1"},
	{"/dev/stderr", "/proc/self/fd/2"},
	{"/dev/ptmx", "pts/ptmx"}, // devtmpfs has the device node; any other /dev needs the devpts one
}

// fsOps are the filesystem calls of setupFilesystems; tests replace them.
type fsOps struct {
	mkdirAll     func(path string, mode os.FileMode) error
	isMountPoint func(path string) bool
	mount        func(source, target, fstype string, flags uintptr, data string) error
	exists       func(path string) bool // lstat: a dangling symlink exists
	symlink      func(target, link string) error
}

func realFsOps() fsOps {
	return fsOps{
		mkdirAll:     os.MkdirAll,
		isMountPoint: isMountPoint,
		mount:        syscall.Mount,
		exists: func(p string) bool {
			_, err := os.Lstat(p)
			return !errors.Is(err, os.ErrNotExist)
		},
		symlink: os.Symlink,
	}
}

// setupFilesystems mounts initMounts that are not mounted yet and makes the missing devLinks. A failure
// is logged and boot goes on: a guest without /dev/shm is still worth reaching.
func setupFilesystems(fs fsOps, logger *log.Logger) {
	for _, m := range initMounts {
		if err := fs.mkdirAll(m.target, 0o755); err != nil {
			logger.Printf("mkdir %s: %v", m.target, err)
			continue
		}
		if fs.isMountPoint(m.target) {
			continue // the initrd moved it in
		}
		if err := fs.mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			logger.Printf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
	for _, l := range devLinks {
		if fs.exists(l.link) {
			continue
		}
		if err := fs.symlink(l.target, l.link); err != nil {
			logger.Printf("symlink %s: %v", l.link, err)
		}
	}
}

// isMountPoint tells whether path is on another filesystem than its parent (or is /).
func isMountPoint(path string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(path, &st) != nil || syscall.Stat(filepath.Join(path, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}

// initName is what runs as PID 1, for `health`: "banger-agent" when it is this very program (--init),
// else PID 1's command name ("systemd", "init", …), or "unknown" when /proc cannot tell.
func initName() string {
	one, err1 := os.Stat("/proc/1/exe")
	self, err2 := os.Stat("/proc/self/exe")
	if err1 == nil && err2 == nil && os.SameFile(one, self) {
		return "banger-agent"
	}
	b, err := os.ReadFile("/proc/1/comm")
	if name := strings.TrimSpace(string(b)); err == nil && name != "" {
		return name
	}
	return "unknown"
}
