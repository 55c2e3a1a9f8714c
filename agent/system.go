package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// sysOps are the requests that change the machine itself. Tests replace them: they run as root on a
// real host, which must keep its clock, name, network and power.
type sysOps struct {
	powerOff    func(force bool) error
	setHostname func(name string) error
	setClock    func(unixMs int64) error
	runIP       func(args []string) error
}

func realSysOps() *sysOps {
	return &sysOps{powerOff: powerOff, setHostname: setHostname, setClock: setClock, runIP: runIP}
}

var (
	bootIDOnce sync.Once
	bootIDVal  string
)

func bootID() string {
	bootIDOnce.Do(func() {
		b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		bootIDVal = strings.TrimSpace(string(b))
	})
	return bootIDVal
}

func pid1IsSystemd() bool {
	b, err := os.ReadFile("/proc/1/comm")
	return err == nil && strings.TrimSpace(string(b)) == "systemd"
}

func handleHealth(s *session, _ uint64, _ int64, _ []byte) (any, *agentError) {
	hostname, _ := os.Hostname()
	var uts syscall.Utsname
	syscall.Uname(&uts)
	return map[string]any{
		"systemState": systemState(), "uptimeSec": uptime(), "bootId": bootID(),
		"hostname": hostname, "kernel": cString(uts.Release[:]), "agentVersion": agentVersion, "init": initName(),
	}, nil
}

func systemState() string {
	if !pid1IsSystemd() {
		return "no-systemd"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The state is on stdout whatever the exit status (degraded and starting exit non-zero).
	out, _ := exec.CommandContext(ctx, "systemctl", "is-system-running").Output()
	if state := strings.TrimSpace(string(out)); state != "" && ctx.Err() == nil {
		return state
	}
	return "unknown"
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func handleSync(s *session, _ uint64, _ int64, _ []byte) (any, *agentError) {
	syscall.Sync()
	return map[string]any{}, nil
}

func handlePoweroff(s *session, epoch uint64, id int64, hdr []byte) (any, *agentError) {
	var req struct {
		Force bool `json:"force"`
	}
	if e := decodeRequest(hdr, &req); e != nil {
		return nil, e
	}
	// The answer goes out before acting; give it a moment to reach the host, not forever (a serial
	// port without a host blocks writes).
	sent := make(chan struct{})
	s.sendHeaderNotify(epoch, map[string]any{"t": "ok", "id": id, "r": map[string]any{}}, sent)
	waitTimeout(func() { <-sent }, 2*time.Second)
	if err := s.sys.powerOff(req.Force); err != nil {
		log.Printf("poweroff: %v", err)
	}
	return nil, nil
}

func powerOff(force bool) error {
	syscall.Sync()
	if force {
		return syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if pid1IsSystemd() {
		return exec.Command("systemctl", "poweroff").Run()
	}
	return syscall.Kill(1, syscall.SIGUSR2) // the poweroff of busybox init and of banger-agent --init
}

func handleSetHostname(s *session, _ uint64, _ int64, hdr []byte) (any, *agentError) {
	var req struct {
		Hostname string `json:"hostname"`
	}
	if e := decodeRequest(hdr, &req); e != nil {
		return nil, e
	}
	if !validHostname(req.Hostname) {
		return nil, badRequest("%q is not a valid hostname", req.Hostname)
	}
	if err := s.sys.setHostname(req.Hostname); err != nil {
		return nil, asAgentError(err, codeIO)
	}
	return map[string]any{}, nil
}

// validHostname accepts RFC 1123 labels joined by dots, at most 64 bytes in all (the kernel's limit).
func validHostname(h string) bool {
	if h == "" || len(h) > 64 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func setHostname(name string) error {
	if err := syscall.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	f, tmp, err := createTemp("/etc", "hostname")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, err = f.WriteString(name + "\n")
	for _, step := range []func() error{f.Sync, func() error { return f.Chmod(0o644) }, f.Close} {
		if err == nil {
			err = step()
		}
	}
	if err != nil {
		f.Close()
		return err
	}
	return os.Rename(tmp, "/etc/hostname")
}

func handleSetClock(s *session, _ uint64, _ int64, hdr []byte) (any, *agentError) {
	var req struct {
		UnixMs *int64 `json:"unixMs"`
	}
	if e := decodeRequest(hdr, &req); e != nil {
		return nil, e
	}
	if req.UnixMs == nil || *req.UnixMs <= 0 {
		return nil, badRequest("unixMs must be a positive integer")
	}
	if err := s.sys.setClock(*req.UnixMs); err != nil {
		return nil, asAgentError(err, codeIO)
	}
	return map[string]any{}, nil
}

func setClock(unixMs int64) error {
	ts := syscall.NsecToTimespec(unixMs * int64(time.Millisecond))
	const clockRealtime = 0
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_SETTIME, clockRealtime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return fmt.Errorf("clock_settime: %w", errno)
	}
	return nil
}

type setNetworkReq struct {
	Iface   string  `json:"iface"`
	Address string  `json:"address"`
	Gateway *string `json:"gateway"`
	MTU     *int64  `json:"mtu"`
}

func handleSetNetwork(s *session, _ uint64, _ int64, hdr []byte) (any, *agentError) {
	var req setNetworkReq
	if e := decodeRequest(hdr, &req); e != nil {
		return nil, e
	}
	cmds, e := networkCommands(&req)
	if e != nil {
		return nil, e
	}
	for _, args := range cmds {
		if err := s.sys.runIP(args); err != nil {
			return nil, asAgentError(err, codeIO)
		}
	}
	return map[string]any{}, nil
}

// networkCommands validates the request and turns it into `ip` argument vectors: the address replaces
// every global address of its family on the interface, then the link comes up and the default route
// (when given) is replaced.
func networkCommands(req *setNetworkReq) ([][]string, *agentError) {
	iface := req.Iface
	if iface == "" {
		iface = "eth0"
	}
	if !validIface(iface) {
		return nil, badRequest("%q is not a valid interface name", iface)
	}
	prefix, err := netip.ParsePrefix(req.Address)
	if err != nil {
		return nil, badRequest("address %q is not in CIDR form: %v", req.Address, err)
	}
	fam := "-4"
	if prefix.Addr().Is6() {
		fam = "-6"
	}
	var cmds [][]string
	if req.MTU != nil {
		if *req.MTU < 68 || *req.MTU > 65535 {
			return nil, badRequest("mtu %d is outside 68…65535", *req.MTU)
		}
		cmds = append(cmds, []string{"link", "set", "dev", iface, "mtu", fmt.Sprint(*req.MTU)})
	}
	cmds = append(cmds,
		[]string{fam, "addr", "flush", "dev", iface, "scope", "global"},
		[]string{fam, "addr", "add", prefix.String(), "dev", iface},
		[]string{"link", "set", "dev", iface, "up"},
	)
	if req.Gateway != nil {
		gw, err := netip.ParseAddr(*req.Gateway)
		if err != nil || gw.Zone() != "" || gw.Is6() != prefix.Addr().Is6() {
			return nil, badRequest("gateway %q is not an address of the same family as %s", *req.Gateway, req.Address)
		}
		cmds = append(cmds, []string{fam, "route", "replace", "default", "via", gw.String(), "dev", iface})
	}
	return cmds, nil
}

func validIface(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c == '/' || c == ':' || c > '~' {
			return false
		}
	}
	return true
}

func runIP(args []string) error {
	ip, err := lookPath("ip", defaultPath)
	if err != nil {
		return errf(codeUnsupported, "this guest has no ip command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ip, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return errf(codeIO, "ip %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
		}
		return err
	}
	return nil
}
