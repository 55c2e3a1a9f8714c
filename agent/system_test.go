package main

import (
	"errors"
	"reflect"
	"testing"
)

func TestSystemRequests(t *testing.T) {
	c := newClient(t)
	expectOK(t, first(c.request(map[string]any{"t": "set-hostname", "hostname": "box-1.example"})))
	expectOK(t, first(c.request(map[string]any{"t": "set-clock", "unixMs": 1700000000123})))
	expectOK(t, first(c.request(map[string]any{"t": "set-network", "address": "10.1.2.3/24", "gateway": "10.1.2.1", "mtu": 1400})))
	expectOK(t, first(c.request(map[string]any{"t": "set-network", "iface": "eth1", "address": "fd00::5/64"})))
	want := []string{
		"hostname box-1.example",
		"clock 1700000000123",
		`ip ["link","set","dev","eth0","mtu","1400"]`,
		`ip ["-4","addr","flush","dev","eth0","scope","global"]`,
		`ip ["-4","addr","add","10.1.2.3/24","dev","eth0"]`,
		`ip ["link","set","dev","eth0","up"]`,
		`ip ["-4","route","replace","default","via","10.1.2.1","dev","eth0"]`,
		`ip ["-6","addr","flush","dev","eth1","scope","global"]`,
		`ip ["-6","addr","add","fd00::5/64","dev","eth1"]`,
		`ip ["link","set","dev","eth1","up"]`,
	}
	if got := c.sys.got(); !reflect.DeepEqual(got, want) {
		t.Fatalf("system calls:\n%q\nwant\n%q", got, want)
	}

	c.sys.ipErr = errf(codeUnsupported, "no ip")
	expectErr(t, first(c.request(map[string]any{"t": "set-network", "address": "10.1.2.3/24"})), codeUnsupported)
	c.sys.ipErr = errors.New("RTNETLINK answers: File exists")
	expectErr(t, first(c.request(map[string]any{"t": "set-network", "address": "10.1.2.3/24"})), codeIO)
}

// poweroff answers before it acts.
func TestPoweroffAnswersFirst(t *testing.T) {
	c := newClient(t)
	for _, force := range []bool{false, true} {
		before := len(c.sys.got())
		expectOK(t, first(c.request(map[string]any{"t": "poweroff", "force": force})))
		want := map[bool]string{false: "poweroff soft", true: "poweroff force"}[force]
		eventually(t, want, func() bool {
			got := c.sys.got()
			return len(got) == before+1 && got[before] == want
		})
	}
}

func TestValidHostname(t *testing.T) {
	for h, ok := range map[string]bool{
		"box": true, "a.b-c.d1": true, "A1": true, "x": true,
		"": false, "-a": false, "a-": false, "a..b": false, "a_b": false, "a b": false, ".a": false,
		"a234567890123456789012345678901234567890123456789012345678901234": false, // a 64-byte label
	} {
		if validHostname(h) != ok {
			t.Errorf("%q: want %v", h, ok)
		}
	}
}
