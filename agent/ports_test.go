package main

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestPortsFindsListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// A connected TCP socket is not a listener and must not be listed.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	clientPort := conn.LocalAddr().(*net.TCPAddr).Port

	c := newClient(t)
	r := expectOK(t, first(c.request(map[string]any{"t": "ports"})))
	rows, _ := r["sockets"].([]any)
	comm, _ := os.ReadFile("/proc/self/comm")
	var sawTCP, sawUDP bool
	for _, x := range rows {
		row := x.(map[string]any)
		port := int(row["port"].(float64))
		if port == clientPort && row["proto"] == "tcp" {
			t.Fatalf("a connected socket was listed: %v", row)
		}
		if _, err := netip.ParseAddr(row["address"].(string)); err != nil {
			t.Fatalf("bad address in %v", row)
		}
		mine := (port == tcpPort && row["proto"] == "tcp") || (port == udpPort && row["proto"] == "udp")
		if !mine || row["family"] != float64(4) || row["address"] != "127.0.0.1" {
			continue
		}
		cmdline, _ := row["cmdline"].([]any)
		if row["pid"] != float64(os.Getpid()) || row["process"] != strings.TrimSpace(string(comm)) ||
			len(cmdline) == 0 || cmdline[0] != os.Args[0] {
			t.Fatalf("row without its owner: %v", row)
		}
		if row["proto"] == "tcp" {
			sawTCP = true
		} else {
			sawUDP = true
		}
	}
	if !sawTCP || !sawUDP {
		t.Fatalf("tcp %d seen %v, udp %d seen %v, in %v", tcpPort, sawTCP, udpPort, sawUDP, rows)
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0035":                         "0.0.0.0:53",
		"00000000000000000000000000000000:0016": "[::]:22",
		"00000000000000000000000001000000:0277": "[::1]:631",
		"0000000000000000FFFF00000100007F:1F90": "[::ffff:127.0.0.1]:8080",
	} {
		addr, port, ok := parseProcAddr(in)
		if got := netip.AddrPortFrom(addr, uint16(port)).String(); !ok || got != want {
			t.Errorf("%s: got %s (%v), want %s", in, got, ok, want)
		}
	}
	if _, _, ok := parseProcAddr("zz:1"); ok {
		t.Error("accepted garbage")
	}
}

func TestFitRowsShortensCmdlines(t *testing.T) {
	long := []string{strings.Repeat("a", 5000), strings.Repeat("b", 5000)}
	var rows []*socketRow
	for i := 0; i < 30; i++ {
		rows = append(rows, &socketRow{Proto: "tcp", Family: 4, Address: "0.0.0.0", Port: i, Cmdline: long})
	}
	fitRows(rows)
	b := jsonString(map[string]any{"t": "ok", "id": 1, "r": map[string]any{"sockets": rows}})
	if len(b) > maxHeader || len(rows[0].Cmdline) == 0 || rows[0].Cmdline[0][:3] != "aaa" {
		t.Fatalf("%d bytes, first cmdline %d args", len(b), len(rows[0].Cmdline))
	}
}
