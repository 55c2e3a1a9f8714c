package main

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

type putReq struct {
	Path   string `json:"path"`
	Mode   *int64 `json:"mode"`
	UID    *int64 `json:"uid"`
	GID    *int64 `json:"gid"`
	Mkdirs bool   `json:"mkdirs"`
}

func preparePut(hdr []byte) (streamSpec, *agentError) {
	var req putReq
	if e := decodeRequest(hdr, &req); e != nil {
		return streamSpec{}, e
	}
	if e := checkAbsPath("path", req.Path); e != nil {
		return streamSpec{}, e
	}
	if strings.HasSuffix(req.Path, "/") {
		return streamSpec{}, badRequest("path %q ends in /", req.Path)
	}
	mode := int64(0o644)
	if req.Mode != nil {
		mode = *req.Mode
	}
	if mode < 0 || mode > 0o7777 {
		return streamSpec{}, badRequest("mode %#o is outside 0…0o7777", mode)
	}
	idsOrDefault(&req.UID, &req.GID)
	if e := checkIDs(req.UID, req.GID); e != nil {
		return streamSpec{}, e
	}
	return streamSpec{in: "file", run: func(st *stream) { runPut(st, &req, uint32(mode)) }}, nil
}

func runPut(st *stream, req *putReq, mode uint32) {
	defer st.cancel(nil)
	dir := filepath.Dir(req.Path)
	if fi, err := os.Stat(dir); err != nil {
		if os.IsNotExist(err) && req.Mkdirs {
			err = mkdirs(dir)
		}
		if err != nil {
			st.finishErr(asAgentError(err, codeIO))
			return
		}
	} else if !fi.IsDir() {
		st.finishErr(errf(codeNotFound, "%s is not a directory", dir))
		return
	}
	if fi, err := os.Lstat(req.Path); err == nil && fi.IsDir() {
		st.finishErr(badRequest("%s is a directory", req.Path))
		return
	}
	f, tmp, err := createTemp(dir, filepath.Base(req.Path))
	if err != nil {
		st.finishErr(asAgentError(err, codeIO))
		return
	}
	// The temporary file goes before the answer does, so the host never sees it after an error.
	fail := func(e *agentError) {
		f.Close()
		os.Remove(tmp)
		st.finishErr(e)
	}
	var written int64
	for {
		if c := st.cancelled(); c != nil {
			fail(c)
			return
		}
		p, eof, alive := st.in.pop(st.done)
		if !alive {
			continue // cancelled: answered at the top
		}
		if eof {
			break
		}
		if _, err := f.Write(p); err != nil {
			fail(asAgentError(err, codeIO))
			return
		}
		written += int64(len(p))
		st.consumed(len(p))
	}
	// fchmod comes after fchown because chown clears the setuid and setgid bits.
	steps := []func() error{
		f.Sync,
		func() error { return f.Chown(int(*req.UID), int(*req.GID)) },
		func() error { return syscall.Fchmod(int(f.Fd()), mode) },
		f.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			fail(asAgentError(err, codeIO))
			return
		}
	}
	if c := st.cancelled(); c != nil {
		fail(c)
		return
	}
	if err := os.Rename(tmp, req.Path); err != nil {
		fail(asAgentError(err, codeIO))
		return
	}
	syncDir(dir) // the rename itself should survive a crash too
	st.finishOK(map[string]any{"bytes": written})
}

// createTemp makes the hidden file beside the target that becomes it by rename.
func createTemp(dir, base string) (*os.File, string, error) {
	if len(base) > 200 {
		base = base[:200] // keep the name within NAME_MAX with the suffix
	}
	for {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, "", err
		}
		name := filepath.Join(dir, "."+base+".banger-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if os.IsExist(err) {
			continue
		}
		return f, name, err
	}
}

// mkdirs creates missing directories with exactly 0755, whatever the umask.
func mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, 0o755)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

type getReq struct {
	Path string `json:"path"`
}

func prepareGet(hdr []byte) (streamSpec, *agentError) {
	var req getReq
	if e := decodeRequest(hdr, &req); e != nil {
		return streamSpec{}, e
	}
	if e := checkAbsPath("path", req.Path); e != nil {
		return streamSpec{}, e
	}
	return streamSpec{outs: []string{"file"}, run: func(st *stream) { runGet(st, req.Path) }}, nil
}

func runGet(st *stream, path string) {
	defer st.cancel(nil)
	// O_NONBLOCK so that opening a FIFO cannot hang before the type check refuses it.
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		st.finishErr(asAgentError(&os.PathError{Op: "open", Path: path, Err: err}, codeIO))
		return
	}
	var sb syscall.Stat_t
	if err := syscall.Fstat(fd, &sb); err != nil {
		syscall.Close(fd)
		st.finishErr(asAgentError(err, codeIO))
		return
	}
	if sb.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		st.finishErr(badRequest("%s is not a regular file", path))
		return
	}
	syscall.SetNonblock(fd, false)
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st.s.sendHeader(st.epoch, map[string]any{
		"t": "meta", "id": st.id, "mode": sb.Mode & 0o7777, "uid": sb.Uid, "gid": sb.Gid, "size": sb.Size,
	})
	cr := &countingReader{r: f}
	err = st.pump("file", cr, false)
	if c := st.cancelled(); c != nil {
		st.finishErr(c)
		return
	}
	if err != nil {
		st.finishErr(asAgentError(err, codeIO))
		return
	}
	st.finishOK(map[string]any{"bytes": cr.n})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
