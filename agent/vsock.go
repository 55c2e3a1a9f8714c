package main

import (
	"fmt"
	"log"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// Go 1.19's syscall package knows neither AF_VSOCK nor its sockaddr, so both are spelled out here.
const (
	afVsock      = 40
	vmaddrCIDAny = 0xFFFFFFFF
)

// sockaddrVM is struct sockaddr_vm from <linux/vm_sockets.h>, 16 bytes in native byte order.
type sockaddrVM struct {
	family    uint16
	reserved1 uint16
	port      uint32
	cid       uint32
	flags     uint8
	zero      [3]uint8
}

func vsockListen(cid, port uint32) (int, error) {
	fd, err := syscall.Socket(afVsock, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	sa := sockaddrVM{family: afVsock, port: port, cid: cid}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)); errno != 0 {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind: %w", errno)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

// runVsock listens on CID_ANY and serves each accepted connection as its own session, in the background.
func runVsock(port uint32, sys *sysOps) error {
	fd, err := vsockListen(vmaddrCIDAny, port)
	if err != nil {
		return err
	}
	log.Printf("vsock: listening on port %d", port)
	go acceptVsock(fd, sys)
	return nil
}

func acceptVsock(fd int, sys *sysOps) {
	for n := 1; ; {
		// A blocking accept in its own goroutine: Syscall (not RawSyscall) lets the runtime run others.
		nfd, _, errno := syscall.Syscall6(syscall.SYS_ACCEPT4, uintptr(fd), 0, 0, syscall.SOCK_CLOEXEC, 0, 0)
		switch errno {
		case 0:
			go serveVsockConn(int(nfd), fmt.Sprintf("vsock#%d", n), sys)
			n++
		case syscall.EINTR, syscall.ECONNABORTED:
		default:
			log.Printf("vsock: accept: %v", errno)
			time.Sleep(time.Second) // EMFILE and the like: wait instead of spinning
		}
	}
}

// serveVsockConn hands the connection to the netpoller (vsock sockets poll properly), so that closing
// it wakes a blocked read or write.
func serveVsockConn(fd int, name string, sys *sysOps) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		log.Printf("%s: %v", name, err)
		syscall.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	serveConn(f, name, sys)
}

// serveConn runs one session on a connection that ends when its reader sees EOF or an error.
func serveConn(f *os.File, name string, sys *sysOps) {
	s := newSession(name, false, sys)
	s.onWriteError = func(error) { f.Close() } // the reader then fails too and the session ends
	s.start(writeAll(f))
	err := s.serve(newFrameReader(f))
	log.Printf("%s: closed (%v)", name, err)
	s.shutdown(2 * time.Second)
}
