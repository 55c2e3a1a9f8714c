package main

import (
	"os"
	"syscall"
	"testing"
	"unsafe"
)

func TestSockaddrVMLayout(t *testing.T) {
	if unsafe.Sizeof(sockaddrVM{}) != 16 || unsafe.Offsetof(sockaddrVM{}.port) != 4 || unsafe.Offsetof(sockaddrVM{}.cid) != 8 {
		t.Fatal("sockaddrVM does not match struct sockaddr_vm")
	}
}

// Over the local vsock loopback (CID 1), where the kernel has it; never towards a real host.
func TestVsockLoopback(t *testing.T) {
	const cidLocal = 1
	port := uint32(40000 + os.Getpid()%20000)
	lfd, err := vsockListen(cidLocal, port)
	if err != nil {
		t.Skipf("no vsock loopback here: %v", err)
	}
	defer syscall.Close(lfd)
	cfd, err := syscall.Socket(afVsock, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("vsock socket: %v", err)
	}
	sa := sockaddrVM{family: afVsock, port: port, cid: cidLocal}
	if _, _, errno := syscall.Syscall(syscall.SYS_CONNECT, uintptr(cfd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)); errno != 0 {
		syscall.Close(cfd)
		t.Skipf("vsock loopback connect: %v", errno)
	}
	nfd, _, errno := syscall.Syscall6(syscall.SYS_ACCEPT4, uintptr(lfd), 0, 0, syscall.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		t.Fatalf("accept: %v", errno)
	}
	fs := &fakeSys{}
	served := make(chan struct{})
	go func() {
		serveVsockConn(int(nfd), "vsock-test", fs.ops())
		close(served)
	}()
	conn := os.NewFile(uintptr(cfd), "vsock-client")
	c := attach(t, conn, conn)
	if f := c.next(0); f.t() != "ready" {
		t.Fatalf("want ready, got %v", f.h)
	}
	expectOK(t, first(c.request(map[string]any{"t": "hello", "version": 1, "nonce": "v"})))
	conn.Close()
	<-served
}
