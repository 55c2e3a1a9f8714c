package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type account struct {
	name   string
	home   string
	groups []uint32 // supplementary groups from /etc/group
}

// lookupAccount reads /etc/passwd and /etc/group directly: os/user would need cgo for NSS, and a guest's
// accounts are local files anyway. A uid with no entry still runs, with HOME=/ (or /root for 0).
func lookupAccount(uid uint32) account {
	acct := account{home: "/"}
	if uid == 0 {
		acct.name, acct.home = "root", "/root"
	}
	eachLine("/etc/passwd", func(fields []string) bool {
		if len(fields) < 7 || fields[2] != strconv.FormatUint(uint64(uid), 10) {
			return true
		}
		acct.name = fields[0]
		if fields[5] != "" {
			acct.home = fields[5]
		}
		return false
	})
	if acct.name == "" {
		return acct
	}
	eachLine("/etc/group", func(fields []string) bool {
		if len(fields) < 4 {
			return true
		}
		for _, m := range strings.Split(fields[3], ",") {
			if m == acct.name {
				if gid, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
					acct.groups = append(acct.groups, uint32(gid))
				}
				break
			}
		}
		return true
	})
	return acct
}

// eachLine calls f with the colon-separated fields of each line until f returns false.
func eachLine(path string, f func([]string) bool) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if !f(strings.Split(line, ":")) {
			return
		}
	}
}

// buildEnv puts the request's env on top of the fixed base environment, keeping first-seen order.
func buildEnv(acct account, extra map[string]string) []string {
	keys := []string{"PATH", "HOME", "USER", "LANG", "TERM"}
	vals := map[string]string{"PATH": defaultPath, "HOME": acct.home, "USER": acct.name, "LANG": "C.UTF-8", "TERM": "dumb"}
	if acct.name == "" {
		keys = []string{"PATH", "HOME", "LANG", "TERM"}
		delete(vals, "USER")
	}
	for k, v := range extra {
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+vals[k])
	}
	return env
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// lookPath searches the command's own PATH (not the agent's), as execvp would in the new environment.
func lookPath(file, path string) (string, *agentError) {
	denied := ""
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 != 0 {
			return p, nil
		}
		if denied == "" {
			denied = p
		}
	}
	if denied != "" {
		return "", errf(codePermission, "%s is not executable", denied)
	}
	return "", errf(codeNotFound, "%s: not found in PATH", file)
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// credential is nil when the process should simply inherit the agent's identity: an unprivileged agent
// (as in host-side tests) cannot call setgroups, even to drop nothing.
func credential(uid, gid uint32, acct account) *syscall.Credential {
	if os.Geteuid() != 0 && uid == uint32(os.Geteuid()) && gid == uint32(os.Getegid()) {
		return nil
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: acct.groups}
}
