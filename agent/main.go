// banger-agent is the guest side of banger's host↔guest protocol (PROTOCOL.md). It runs inside every
// guest, speaks over virtio-serial and/or vsock (or stdin/stdout for tests), and uses only the standard
// library so that one static binary runs on any x86_64 Linux userland.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const (
	agentVersion      = "0.1.0"
	defaultSerialName = "dev.banger.agent.0"
	defaultVsockPort  = 52
)

func main() {
	log.SetFlags(0) // journald stamps lines itself
	log.SetPrefix("banger-agent: ")
	stdio := flag.Bool("stdio", false, "one session on stdin/stdout; exit at stdin EOF")
	serialName := flag.String("serial", "", "virtio-serial port name (default "+defaultSerialName+")")
	vsockPort := flag.Uint("vsock-port", 0, fmt.Sprintf("vsock port to listen on (default %d)", defaultVsockPort))
	version := flag.Bool("version", false, "print the version and exit")
	initMode := flag.Bool("init", false, "run as PID 1 (init.go): mount, supervise the agent and sshd, reap, power off; "+
		"arguments after the flags replace the agent child (tests)")
	noMounts := flag.Bool("no-mounts", false, "with --init: mount and create nothing (tests)")
	noReboot := flag.Bool("no-reboot", false, "with --init: exit 0 after shutting down instead of powering off (tests)")
	noSshd := flag.Bool("no-sshd", false, "with --init: do not start the image's sshd (tests)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *initMode {
		if set["stdio"] || set["serial"] || set["vsock-port"] || set["version"] {
			log.Print("--init cannot be combined with --stdio, --serial, --vsock-port or --version")
			os.Exit(2)
		}
		syscall.Umask(0o022)
		os.Exit(runInit(initOptions{noMounts: *noMounts, noReboot: *noReboot, noSshd: *noSshd, child: flag.Args()}))
	}
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if set["no-mounts"] || set["no-reboot"] || set["no-sshd"] {
		log.Print("--no-mounts, --no-reboot and --no-sshd go with --init")
		os.Exit(2)
	}
	if *version {
		fmt.Printf("banger-agent %s (protocol %d)\n", agentVersion, protocolVersion)
		return
	}
	if *stdio && (set["serial"] || set["vsock-port"]) {
		log.Print("--stdio cannot be combined with --serial or --vsock-port")
		os.Exit(2)
	}
	if set["vsock-port"] && (*vsockPort == 0 || *vsockPort >= 1<<32-1) {
		log.Printf("--vsock-port %d is not a usable port", *vsockPort)
		os.Exit(2)
	}
	if set["serial"] && *serialName == "" {
		log.Print("--serial needs a port name")
		os.Exit(2)
	}

	// With SIGPIPE delivered to a channel, a write to a closed stdout fails with EPIPE instead of killing
	// the agent; and unlike signal.Ignore, children still start with the default disposition.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	syscall.Umask(0o022) // files the agent and its commands create get the usual modes, whatever started it
	sys := realSysOps()

	if *stdio {
		os.Exit(runStdio(sys))
	}
	if !set["serial"] && !set["vsock-port"] {
		*serialName, *vsockPort = defaultSerialName, defaultVsockPort
	}
	if *serialName != "" {
		go runSerial(*serialName, sys)
	}
	if *vsockPort != 0 {
		if err := runVsock(uint32(*vsockPort), sys); err != nil {
			log.Printf("vsock port %d unavailable: %v", *vsockPort, err)
			if *serialName == "" {
				os.Exit(1)
			}
		}
	}
	select {}
}

func runStdio(sys *sysOps) int {
	s := newSession("stdio", false, sys)
	s.start(func(b []byte) error {
		_, err := os.Stdout.Write(b)
		return err
	})
	err := s.serve(newFrameReader(os.Stdin))
	s.shutdown(3 * time.Second)
	if err != io.EOF {
		log.Printf("stdin: %v", err)
		return 1
	}
	return 0
}
