package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// Error codes from PROTOCOL.md, "Answers".
const (
	codeBadRequest  = "BAD_REQUEST"
	codeNotFound    = "NOT_FOUND"
	codePermission  = "PERMISSION"
	codeExists      = "EXISTS"
	codeConnRefused = "CONNREFUSED"
	codeUnsupported = "UNSUPPORTED"
	codeCancelled   = "CANCELLED"
	codeTooMany     = "TOO_MANY"
	codeIO          = "IO"
	codeInternal    = "INTERNAL"
)

// maxMessage keeps an error answer's header far below the 64 KiB header limit whatever a message quotes.
const maxMessage = 2048

type agentError struct {
	code string
	msg  string
}

func (e *agentError) Error() string { return e.code + ": " + e.msg }

func errf(code, format string, args ...any) *agentError {
	return &agentError{code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *agentError {
	return errf(codeBadRequest, format, args...)
}

// asAgentError turns any error into a protocol error, choosing the code from the errno where there is one.
func asAgentError(err error, fallback string) *agentError {
	var ae *agentError
	if errors.As(err, &ae) {
		return ae
	}
	return &agentError{code: codeForErr(err, fallback), msg: err.Error()}
}

func codeForErr(err error, fallback string) string {
	if errors.Is(err, exec.ErrNotFound) {
		return codeNotFound
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fallback
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR:
		return codeNotFound
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return codePermission
	case syscall.EEXIST, syscall.ENOTEMPTY:
		return codeExists
	case syscall.ECONNREFUSED:
		return codeConnRefused
	case syscall.EINVAL, syscall.EISDIR, syscall.ENOEXEC, syscall.ENAMETOOLONG, syscall.ELOOP:
		return codeBadRequest
	case syscall.ENOSYS, syscall.EAFNOSUPPORT, syscall.EOPNOTSUPP:
		return codeUnsupported
	}
	return codeIO
}

// decodeRequest decodes a whole header into a request's own struct; a field of the wrong type is the
// host's mistake, so it is BAD_REQUEST with json's own explanation.
func decodeRequest(hdr []byte, v any) *agentError {
	if err := json.Unmarshal(hdr, v); err != nil {
		return badRequest("invalid request: %v", err)
	}
	return nil
}

const maxPath = 4096

func checkAbsPath(what, p string) *agentError {
	switch {
	case p == "":
		return badRequest("%s is missing", what)
	case len(p) > maxPath:
		return badRequest("%s is longer than %d bytes", what, maxPath)
	case strings.IndexByte(p, 0) >= 0:
		return badRequest("%s contains a NUL byte", what)
	case p[0] != '/':
		return badRequest("%s %q is not absolute", what, p)
	}
	return nil
}

func truncateMessage(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "…"
}
