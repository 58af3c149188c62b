package capture

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestConnRecordBounded checks that a pcap record longer than MaxFrame
// is an error before it is read, whatever snap length the file declares.
func TestConnRecordBounded(t *testing.T) {
	for _, size := range []int{MaxFrame, MaxFrame + 1} {
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		if err := w.WriteFileHeader(0xffffffff, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		f := frame(1, size)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: size, Length: size}, f); err != nil {
			t.Fatal(err)
		}
		_, err := New(bytes.NewReader(buf.Bytes()), nil, PCAP)
		switch {
		case size <= MaxFrame && err != nil:
			t.Errorf("a record of %d bytes: %v", size, err)
		case size > MaxFrame && (err == nil || !strings.Contains(err.Error(), "capture length exceeds snap length: 262145 > 262144")):
			t.Errorf("a record of %d bytes, snap length 0xffffffff: %v, want the error that it exceeds 262144", size, err)
		}
	}
}
