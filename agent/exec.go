package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	maxArgv      = 4096
	maxArgvBytes = 256 << 10
	maxEnv       = 1024
	maxID        = 1<<32 - 2 // (uid_t)-1 means "unchanged" to the kernel
	// drainGrace is how long output may keep flowing after a killed process exited: a daemonised
	// grandchild in another session can hold the pipes open forever, and a cancel must still end.
	drainGrace = 2 * time.Second
)

type execReq struct {
	Argv      []string          `json:"argv"`
	Env       map[string]string `json:"env"`
	Cwd       string            `json:"cwd"`
	Stdin     bool              `json:"stdin"`
	TimeoutMs int64             `json:"timeoutMs"`
	UID       *int64            `json:"uid"`
	GID       *int64            `json:"gid"`
}

func prepareExec(hdr []byte) (streamSpec, *agentError) {
	var req execReq
	if e := decodeRequest(hdr, &req); e != nil {
		return streamSpec{}, e
	}
	idsOrDefault(&req.UID, &req.GID)
	if e := req.validate(); e != nil {
		return streamSpec{}, e
	}
	spec := streamSpec{outs: []string{"stdout", "stderr"}, run: func(st *stream) { runExec(st, &req) }}
	if req.Stdin {
		spec.in = "stdin"
	}
	return spec, nil
}

func (req *execReq) validate() *agentError {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return badRequest("argv is empty")
	}
	if len(req.Argv) > maxArgv {
		return badRequest("argv has more than %d entries", maxArgv)
	}
	total := 0
	for _, a := range req.Argv {
		total += len(a) + 1
		if strings.IndexByte(a, 0) >= 0 {
			return badRequest("argv contains a NUL byte")
		}
	}
	if total > maxArgvBytes {
		return badRequest("argv is larger than %d bytes", maxArgvBytes)
	}
	if len(req.Env) > maxEnv {
		return badRequest("env has more than %d entries", maxEnv)
	}
	for k, v := range req.Env {
		if !validEnvKey(k) {
			return badRequest("env key %q is not a valid name", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return badRequest("env %s contains a NUL byte", k)
		}
	}
	if req.Cwd != "" {
		if e := checkAbsPath("cwd", req.Cwd); e != nil {
			return e
		}
	}
	if req.TimeoutMs < 0 {
		return badRequest("timeoutMs is negative")
	}
	return checkIDs(req.UID, req.GID)
}

// checkIDs validates uid and gid and fills in the defaults: 0, which is the agent's own identity in a
// guest. An agent that is not root (host-side tests with --stdio) defaults to its own uid and gid instead,
// the only identity it can give.
func checkIDs(uid, gid *int64) *agentError {
	for _, p := range []*int64{uid, gid} {
		if p != nil && (*p < 0 || *p > maxID) {
			return badRequest("uid and gid must be between 0 and %d", int64(maxID))
		}
	}
	return nil
}

func idsOrDefault(uid, gid **int64) {
	if *uid == nil {
		v := int64(os.Geteuid())
		*uid = &v
	}
	if *gid == nil {
		v := int64(os.Getegid())
		*gid = &v
	}
}

func runExec(st *stream, req *execReq) {
	defer st.cancel(nil) // releases the stdin feeder whatever happens
	uid, gid := uint32(*req.UID), uint32(*req.GID)
	acct := lookupAccount(uid)
	env := buildEnv(acct, req.Env)
	cwd, e := execDir(req.Cwd, uid)
	if e != nil {
		st.finishErr(e)
		return
	}
	path := req.Argv[0]
	if !strings.Contains(path, "/") {
		if path, e = lookPath(path, envValue(env, "PATH")); e != nil {
			st.finishErr(e)
			return
		}
	}
	var files []*os.File // every pipe end the agent holds, closed on the way out
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	pipe := func() (*os.File, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil
		}
		files = append(files, r, w)
		return r, w
	}
	outR, outW := pipe()
	errR, errW := pipe()
	if outR == nil || errR == nil {
		st.finishErr(errf(codeInternal, "cannot create pipes"))
		return
	}
	cmd := &exec.Cmd{
		Path: path, Args: req.Argv, Env: env, Dir: cwd, Stdout: outW, Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Credential: credential(uid, gid, acct)},
	}
	var inW *os.File
	if req.Stdin {
		var inR *os.File
		if inR, inW = pipe(); inR == nil {
			st.finishErr(errf(codeInternal, "cannot create pipes"))
			return
		}
		cmd.Stdin = inR
		defer inR.Close()
	}
	err := cmd.Start()
	// The child holds its ends now; ours must go or the pipes never reach EOF.
	outW.Close()
	errW.Close()
	if cmd.Stdin != nil {
		cmd.Stdin.(*os.File).Close()
	}
	if err != nil {
		st.finishErr(asAgentError(err, codeInternal))
		return
	}
	pid := cmd.Process.Pid
	reaped := false
	st.mu.Lock()
	st.signalFn = func(sig syscall.Signal) {
		if !reaped { // once reaped, the pid may belong to someone else
			syscall.Kill(-pid, sig)
		}
	}
	st.mu.Unlock()
	st.s.sendHeader(st.epoch, map[string]any{"t": "started", "id": st.id, "pid": pid})

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); st.pump("stdout", outR, true) }()
	go func() { defer pumps.Done(); st.pump("stderr", errR, true) }()
	if inW != nil {
		go st.feed(inW)
	}

	killed := make(chan struct{})
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			syscall.Kill(-pid, syscall.SIGKILL)
			close(killed)
		})
	}
	var timer *time.Timer
	timerFired := make(chan struct{})
	if req.TimeoutMs > 0 {
		timer = time.AfterFunc(time.Duration(req.TimeoutMs)*time.Millisecond, func() {
			close(timerFired)
			kill()
		})
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-st.done:
			kill()
		case <-exited:
		}
	}()
	waitErr := cmd.Wait()
	close(exited)
	if timer != nil {
		timer.Stop()
	}
	st.mu.Lock()
	reaped = true
	st.mu.Unlock()

	// exit must follow all output, so wait for both pipes to drain; after a kill, only for drainGrace.
	drained := make(chan struct{})
	go func() {
		pumps.Wait()
		close(drained)
	}()
	cancelC, killedC := st.done, killed
	var graceC <-chan time.Time
	for waiting := true; waiting; {
		select {
		case <-drained:
			waiting = false
		case <-cancelC:
			cancelC = nil
			kill() // the leader is gone, but what is left of its group holds the pipes
		case <-killedC:
			killedC = nil
			graceC = time.After(drainGrace)
		case <-graceC:
			graceC = nil
			outR.Close()
			errR.Close()
		}
	}

	if r := st.cancelled(); r != nil && r.code != codeCancelled {
		st.finishErr(r) // the host broke flow control
		return
	}
	ps := cmd.ProcessState
	if ps == nil {
		st.finishErr(asAgentError(waitErr, codeInternal))
		return
	}
	exit := map[string]any{"t": "exit", "id": st.id, "code": nil, "signal": nil, "timedOut": false}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		exit["signal"] = signalName(ws.Signal())
		select {
		case <-timerFired:
			exit["timedOut"] = true
		default:
		}
	} else {
		exit["code"] = ws.ExitStatus()
	}
	st.finishHeader(exit)
}

func execDir(cwd string, uid uint32) (string, *agentError) {
	if cwd == "" {
		if fi, err := os.Stat("/root"); uid == 0 && err == nil && fi.IsDir() {
			return "/root", nil
		}
		return "/", nil
	}
	fi, err := os.Stat(cwd)
	if err != nil {
		return "", asAgentError(err, codeIO)
	}
	if !fi.IsDir() {
		return "", badRequest("cwd %s is not a directory", cwd)
	}
	return cwd, nil
}

// feed copies the host's stdin data into the process. Data the process no longer reads is still
// acknowledged, so a host blocked on its window learns nothing false and simply waits for exit.
func (st *stream) feed(w *os.File) {
	defer w.Close()
	broken := false
	for {
		p, eof, ok := st.in.pop(st.done)
		if !ok || eof {
			return
		}
		if !broken {
			if _, err := w.Write(p); err != nil {
				broken = true
			}
		}
		st.consumed(len(p))
	}
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGILL: "ILL",
	syscall.SIGTRAP: "TRAP", syscall.SIGABRT: "ABRT", syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE",
	syscall.SIGKILL: "KILL", syscall.SIGUSR1: "USR1", syscall.SIGSEGV: "SEGV", syscall.SIGUSR2: "USR2",
	syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM", syscall.SIGSTKFLT: "STKFLT",
	syscall.SIGCHLD: "CHLD", syscall.SIGCONT: "CONT", syscall.SIGSTOP: "STOP", syscall.SIGTSTP: "TSTP",
	syscall.SIGTTIN: "TTIN", syscall.SIGTTOU: "TTOU", syscall.SIGURG: "URG", syscall.SIGXCPU: "XCPU",
	syscall.SIGXFSZ: "XFSZ", syscall.SIGVTALRM: "VTALRM", syscall.SIGPROF: "PROF", syscall.SIGWINCH: "WINCH",
	syscall.SIGIO: "IO", syscall.SIGPWR: "PWR", syscall.SIGSYS: "SYS",
}

func signalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return strconv.Itoa(int(sig)) // real-time signals have no fixed names
}
