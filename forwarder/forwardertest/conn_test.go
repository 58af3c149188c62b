package forwardertest

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestConnBatches(t *testing.T) {
	c := NewConn(4)
	c.In <- [][]byte{{1}, {2}, {3}}
	bufs := [][]byte{make([]byte, 8), make([]byte, 8)}
	sizes := make([]int, 2)
	if n, err := c.ReadBatch(bufs, sizes); n != 2 || err != nil || bufs[0][0] != 1 || bufs[1][0] != 2 {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if n, err := c.ReadBatch(bufs, sizes); n != 1 || err != nil || bufs[0][0] != 3 || sizes[0] != 1 {
		t.Fatalf("second read (the rest of the batch): %d, %v", n, err)
	}
	frame := []byte{9, 9}
	if n, err := c.WriteBatch([][]byte{frame}); n != 1 || err != nil {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	frame[0] = 0 // the Conn kept a copy
	if got := <-c.Out; len(got) != 1 || got[0][0] != 9 {
		t.Fatalf("written %v, want [[9 9]]", got)
	}
	c.WriteErr <- syscall.ENOBUFS
	if n, err := c.WriteBatch([][]byte{frame}); n != 0 || !errors.Is(err, syscall.ENOBUFS) {
		t.Fatalf("WriteBatch with an error queued: %d, %v", n, err)
	}
	if len(c.Out) != 0 {
		t.Fatal("a failed write sent frames")
	}
}

func TestConnDeadlineAndClose(t *testing.T) {
	c := NewConn(1)
	bufs, sizes := [][]byte{make([]byte, 8)}, []int{0}
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := c.ReadBatch(bufs, sizes); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(bufs, sizes)
		done <- err
	}()
	c.SetReadDeadline(time.Now()) // a blocked read sees a new deadline
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked read after SetReadDeadline(now): %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked read ignored a new deadline")
	}
	c.SetReadDeadline(time.Time{})
	go func() {
		_, err := c.ReadBatch(bufs, sizes)
		done <- err
	}()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked read after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock a read")
	}
	if _, err := c.WriteBatch([][]byte{{1}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}
