package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type statsReq struct {
	SampleMs *int64 `json:"sampleMs"`
}

type diskRow struct {
	Mount      string `json:"mount"`
	Device     string `json:"device"`
	TotalBytes uint64 `json:"totalBytes"`
	UsedBytes  uint64 `json:"usedBytes"`
}

func handleStats(s *session, _ uint64, _ int64, hdr []byte) (any, *agentError) {
	var req statsReq
	if e := decodeRequest(hdr, &req); e != nil {
		return nil, e
	}
	sample := int64(250)
	if req.SampleMs != nil {
		sample = *req.SampleMs
	}
	if sample < 50 || sample > 2000 {
		return nil, badRequest("sampleMs %d is outside 50…2000", sample)
	}
	busy0, total0, cpus := cpuTimes()
	time.Sleep(time.Duration(sample) * time.Millisecond)
	busy1, total1, _ := cpuTimes()
	pct := 0.0
	if total1 > total0 {
		pct = 100 * float64(busy1-busy0) / float64(total1-total0)
	}
	mem := meminfo()
	total, avail := mem["MemTotal"], mem["MemAvailable"]
	if _, ok := mem["MemAvailable"]; !ok { // kernels before 3.14
		avail = mem["MemFree"] + mem["Buffers"] + mem["Cached"]
	}
	used := uint64(0)
	if total > avail {
		used = total - avail
	}
	return map[string]any{
		"cpus": cpus, "cpuPercent": pct,
		"memTotalBytes": total, "memAvailableBytes": avail, "memUsedBytes": used,
		"disks": disks(), "uptimeSec": uptime(), "load": loadavg(), "agentRssBytes": selfRSS(),
	}, nil
}

// cpuTimes returns busy and total jiffies over all CPUs (guest time is already inside user and nice)
// and the number of CPUs the kernel lists.
func cpuTimes() (busy, total uint64, cpus int) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		for i, v := range fields[1:] {
			if i >= 8 { // user nice system idle iowait irq softirq steal
				break
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
	}
	return busy, total, cpus
}

// meminfo returns /proc/meminfo in bytes.
func meminfo() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[key] = n
	}
	return out
}

// disks covers / and, when it is a mount of its own, /root (where banger puts the work disk).
func disks() []diskRow {
	devices := mountDevices()
	rows := []diskRow{}
	for _, mount := range []string{"/", "/root"} {
		dev, mounted := devices[mount]
		if !mounted && mount != "/" {
			continue
		}
		var sf syscall.Statfs_t
		if syscall.Statfs(mount, &sf) != nil {
			continue
		}
		bs := uint64(sf.Frsize)
		if bs == 0 {
			bs = uint64(sf.Bsize)
		}
		rows = append(rows, diskRow{
			Mount: mount, Device: dev, TotalBytes: sf.Blocks * bs, UsedBytes: (sf.Blocks - sf.Bfree) * bs,
		})
	}
	return rows
}

// mountDevices maps mount points to their source from /proc/self/mountinfo; the last mount on a point
// is the visible one.
func mountDevices() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 2 {
			continue
		}
		out[a[4]] = b[1]
	}
	return out
}

func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[0], 64)
	return v
}

func loadavg() []float64 {
	out := []float64{0, 0, 0}
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(b)) {
		if i >= 3 {
			break
		}
		out[i], _ = strconv.ParseFloat(f, 64)
	}
	return out
}

func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line[len("VmRSS:"):])
			if len(fields) > 0 {
				n, _ := strconv.ParseUint(fields[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}
