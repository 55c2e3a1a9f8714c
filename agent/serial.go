package main

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	serialRetry = 500 * time.Millisecond
	// hostPoll is the pause between reads while no host is connected: virtio_console's read() then
	// returns 0 at once instead of blocking, so reading again straight away would spin.
	hostPoll = 100 * time.Millisecond
)

// runSerial keeps the named virtio-serial port open for the agent's whole life, reopening it if it fails.
func runSerial(name string, sys *sysOps) {
	waiting := false
	for {
		path := findSerialPort(name)
		if path == "" {
			if !waiting {
				log.Printf("serial: waiting for virtio port %q", name)
				waiting = true
			}
			time.Sleep(serialRetry)
			continue
		}
		// Blocking mode and plain syscalls, not the netpoller: the port reports POLLHUP while no host is
		// connected, which the poller would take for a dead descriptor.
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if !waiting {
				log.Printf("serial: open %s: %v", path, err)
				waiting = true
			}
			time.Sleep(serialRetry)
			continue
		}
		waiting = false
		log.Printf("serial: opened %s (%s)", path, name)
		err = serveSerial(fdDevice(fd), "serial "+name, sys)
		log.Printf("serial: %s: %v; reopening", path, err)
		syscall.Close(fd)
		time.Sleep(serialRetry)
	}
}

// findSerialPort returns /dev/<vportNpM> for the port whose sysfs name matches, or "".
func findSerialPort(name string) string {
	dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(d)
		}
	}
	return ""
}

// A serialDevice reads (0, nil) while no host is connected, like the virtio console does.
type serialDevice interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
}

type fdDevice int

func (fd fdDevice) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

func (fd fdDevice) Write(p []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// hostReader turns "no host" into io.EOF and remembers whether the current host sent anything.
type hostReader struct {
	dev    serialDevice
	active bool
}

func (h *hostReader) Read(p []byte) (int, error) {
	n, err := h.dev.Read(p)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	h.active = true
	return n, nil
}

func writeAll(w io.Writer) func([]byte) error {
	return func(b []byte) error {
		for len(b) > 0 {
			n, err := w.Write(b)
			if err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
}

// serveSerial runs the one session of an open serial port until the device fails. Hosts come and go on
// the same port: when one leaves, its half-read frame and its streams are dropped, and a `ready` is
// queued, which the kernel holds until the next host connects.
func serveSerial(dev serialDevice, name string, sys *sysOps) error {
	s := newSession(name, true, sys)
	broken := make(chan error, 1)
	s.onWriteError = func(err error) {
		select {
		case broken <- err:
		default:
		}
	}
	hr := &hostReader{dev: dev}
	fr := newFrameReader(hr)
	s.start(writeAll(dev))
	var err error
	for err == nil {
		if err = s.serve(fr); err != io.EOF {
			break
		}
		err = nil
		fr.reset()
		if hr.active {
			hr.active = false
			s.resetStreams("the host disconnected")
		}
		if s.readyPending.Load() == 0 {
			s.sendReady()
		}
		select {
		case err = <-broken:
		case <-time.After(hostPoll):
		}
	}
	s.shutdown(2 * time.Second)
	return err
}
