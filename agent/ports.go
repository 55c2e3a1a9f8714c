package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

type socketRow struct {
	Proto   string   `json:"proto"`
	Family  int      `json:"family"`
	Address string   `json:"address"`
	Port    int      `json:"port"`
	PID     *int     `json:"pid"`
	Process *string  `json:"process"`
	Cmdline []string `json:"cmdline"` // null when no process is found
	inode   uint64
}

const tcpListen = "0A"

func handlePorts(s *session, _ uint64, _ int64, _ []byte) (any, *agentError) {
	var rows []*socketRow
	for _, src := range []struct {
		file   string
		proto  string
		family int
	}{
		{"/proc/net/tcp", "tcp", 4}, {"/proc/net/tcp6", "tcp", 6},
		{"/proc/net/udp", "udp", 4}, {"/proc/net/udp6", "udp", 6},
	} {
		rows = append(rows, readSockets(src.file, src.proto, src.family)...)
	}
	owners := socketOwners(rows)
	procs := map[int]*procInfo{}
	for _, r := range rows {
		pid, ok := owners[r.inode]
		if !ok {
			continue
		}
		info := procs[pid]
		if info == nil {
			info = readProc(pid)
			procs[pid] = info
		}
		p := pid
		r.PID, r.Process, r.Cmdline = &p, &info.comm, info.cmdline
	}
	if rows == nil {
		rows = []*socketRow{}
	}
	fitRows(rows)
	return map[string]any{"sockets": rows}, nil
}

// readSockets lists TCP listeners and unconnected UDP sockets from one /proc/net table. A missing table
// (no IPv6 in the guest kernel) just contributes nothing.
func readSockets(file, proto string, family int) []*socketRow {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows []*socketRow
	sc := bufio.NewScanner(f)
	sc.Scan() // the column titles
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		local, lport, ok1 := parseProcAddr(fields[1])
		remote, rport, ok2 := parseProcAddr(fields[2])
		if !ok1 || !ok2 {
			continue
		}
		if proto == "tcp" && fields[3] != tcpListen {
			continue
		}
		if proto == "udp" && (!remote.IsUnspecified() || rport != 0) {
			continue
		}
		inode, _ := strconv.ParseUint(fields[9], 10, 64)
		rows = append(rows, &socketRow{
			Proto: proto, Family: family, Address: local.String(), Port: lport, inode: inode,
		})
	}
	return rows
}

// parseProcAddr decodes "0100007F:1F90": the address is printed as 32-bit words in the kernel's byte
// order (little-endian on x86_64, the only architecture the agent is built for), the port in plain hex.
func parseProcAddr(s string) (netip.Addr, int, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexAddr)
	port, err2 := strconv.ParseUint(hexPort, 16, 16)
	if !ok || err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw) // an IPv4-mapped address stays IPv6 ("::ffff:1.2.3.4")
	return addr, int(port), true
}

// socketOwners maps socket inodes to the lowest pid holding them (a forked server's parent), scanning
// /proc/*/fd only until every wanted inode is found.
func socketOwners(rows []*socketRow) map[uint64]int {
	want := map[uint64]bool{}
	for _, r := range rows {
		if r.inode != 0 {
			want[r.inode] = true
		}
	}
	owners := map[uint64]int{}
	if len(want) == 0 {
		return owners
	}
	procDir, err := os.Open("/proc")
	if err != nil {
		return owners
	}
	names, _ := procDir.Readdirnames(-1)
	procDir.Close()
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
		d, err := os.Open(fdDir)
		if err != nil {
			continue
		}
		fds, _ := d.Readdirnames(-1)
		d.Close()
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
			if err == nil && want[inode] {
				if _, seen := owners[inode]; !seen {
					owners[inode] = pid
				}
			}
		}
		if len(owners) == len(want) {
			break
		}
	}
	return owners
}

type procInfo struct {
	comm    string
	cmdline []string
}

func readProc(pid int) *procInfo {
	dir := "/proc/" + strconv.Itoa(pid)
	info := &procInfo{cmdline: []string{}}
	if b, err := os.ReadFile(dir + "/comm"); err == nil {
		info.comm = strings.TrimSuffix(string(b), "\n")
	}
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil && len(b) > 0 {
		info.cmdline = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	return info
}

// fitRows shortens command lines until the answer fits in one header (PROTOCOL.md: cmdline may be cut).
func fitRows(rows []*socketRow) {
	for _, limit := range []int{4096, 1024, 256, 64, 0} {
		size := 0
		for _, r := range rows {
			b, _ := json.Marshal(r)
			size += len(b) + 1
		}
		if size < maxHeader-256 {
			return
		}
		for _, r := range rows {
			r.Cmdline = cutArgs(r.Cmdline, limit)
		}
	}
}

func cutArgs(args []string, limit int) []string {
	if args == nil {
		return nil
	}
	out := []string{}
	used := 0
	for _, a := range args {
		if used+len(a) > limit {
			if rest := limit - used; rest > 0 {
				out = append(out, a[:rest])
			}
			break
		}
		out = append(out, a)
		used += len(a)
	}
	return out
}
