package main

import (
	"os"
	"testing"
)

func TestStats(t *testing.T) {
	c := newClient(t)
	r := expectOK(t, first(c.request(map[string]any{"t": "stats", "sampleMs": 50})))
	num := func(k string) float64 {
		v, ok := r[k].(float64)
		if !ok {
			t.Fatalf("%s missing in %v", k, r)
		}
		return v
	}
	if num("cpus") < 1 || num("cpuPercent") < 0 || num("cpuPercent") > 100 {
		t.Fatalf("cpu: %v", r)
	}
	total, avail, used := num("memTotalBytes"), num("memAvailableBytes"), num("memUsedBytes")
	if total <= 0 || avail <= 0 || avail > total || used != total-avail {
		t.Fatalf("memory: %v", r)
	}
	if num("uptimeSec") <= 0 || num("agentRssBytes") < 1<<20 {
		t.Fatalf("uptime or rss: %v", r)
	}
	if load, _ := r["load"].([]any); len(load) != 3 {
		t.Fatalf("load: %v", r["load"])
	}
	disks, _ := r["disks"].([]any)
	if len(disks) == 0 {
		t.Fatalf("no disks: %v", r)
	}
	root := disks[0].(map[string]any)
	if root["mount"] != "/" || root["totalBytes"].(float64) <= 0 || root["usedBytes"].(float64) > root["totalBytes"].(float64) {
		t.Fatalf("root disk: %v", root)
	}
	_, rootIsMount := mountDevices()["/root"]
	if (len(disks) == 2) != rootIsMount {
		t.Fatalf("disks %v, /root mounted %v", disks, rootIsMount)
	}
}

func TestHealth(t *testing.T) {
	c := newClient(t)
	r := expectOK(t, first(c.request(map[string]any{"t": "health"})))
	hostname, _ := os.Hostname()
	if r["hostname"] != hostname || r["bootId"] != bootID() || r["agentVersion"] != agentVersion ||
		r["kernel"] == "" || r["uptimeSec"].(float64) <= 0 {
		t.Fatalf("health: %v", r)
	}
	state, _ := r["systemState"].(string)
	if pid1IsSystemd() {
		if state == "" || state == "no-systemd" {
			t.Fatalf("systemState %q under systemd", state)
		}
	} else if state != "no-systemd" {
		t.Fatalf("systemState %q without systemd", state)
	}
}
