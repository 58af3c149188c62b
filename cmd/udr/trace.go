//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/udr-lb/udr/director"
	"github.com/udr-lb/udr/forwarder"
)

// adminTrace is `udr admin --trace [--count N] [--duration D] [--write
// FILE.pcapng] [FILTER...]`: it prints, as the running director decides
// them, one line per frame that matches FILTER (forwarder.ParseTraceFilter),
// the explanation udr replay --explain prints, and with --write captures
// the frames (their first forwarder.TraceSnap bytes) with the explanation as
// each packet's comment. It ends after N frames or D, or at an interrupt.
func adminTrace(path string, args []string, stdout, stderr io.Writer) error {
	req := director.TraceRequest{}
	var write string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			req.Filter = append(req.Filter, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		if name == "--trace" {
			if hasVal {
				return usageErrorf("admin: --trace takes no value: the filter follows it, e.g. --trace client 198.51.100.0/24")
			}
			continue
		}
		if name != "--count" && name != "--duration" && name != "--write" {
			return usageErrorf("admin: %s: with --trace, the options are --count N, --duration D and --write FILE.pcapng", name)
		}
		if !hasVal {
			if i+1 == len(args) {
				return usageErrorf("admin: %s needs a value", name)
			}
			i++
			val = args[i]
		}
		switch name {
		case "--count":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > director.MaxTraceCount {
				return usageErrorf("admin: --count %q: want 1 to %d frames", val, director.MaxTraceCount)
			}
			req.Count = n
		case "--duration":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 || d > director.MaxTraceDuration {
				return usageErrorf("admin: --duration %q: want a duration such as 30s, at most %v", val, director.MaxTraceDuration)
			}
			req.Duration = val
		case "--write":
			if !strings.HasSuffix(val, ".pcapng") {
				return usageErrorf("admin: --write %q: the capture is pcapng, with the explanations as comments: name it FILE.pcapng", val)
			}
			write = val
		}
	}
	// The filter is checked here too, for an error before any request.
	if _, err := forwarder.ParseTraceFilter(req.Filter); err != nil {
		return usageErrorf("admin: %v", err)
	}
	req.Frames = write != ""

	var ng *pcapgo.NgWriter
	var bw *bufio.Writer
	if write != "" {
		f, err := os.Create(write)
		if err != nil {
			return fmt.Errorf("admin: %v", err)
		}
		defer f.Close()
		bw = bufio.NewWriter(f)
		intf := pcapgo.DefaultNgInterface
		intf.LinkType = layers.LinkTypeEthernet
		intf.SnapLength = forwarder.TraceSnap
		intf.OS = ""
		if ng, err = pcapgo.NewNgWriterInterface(bw, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "udr admin --trace"}}); err != nil {
			return fmt.Errorf("admin: %s: %v", write, err)
		}
	}

	// An interrupt ends the trace as its count would: the capture is
	// complete up to it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://udr/v1/trace", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	c := controlClient(path)
	c.Timeout = 0 // the stream lasts as long as the trace; an interrupt ends it
	resp, err := c.Do(hreq)
	if err != nil {
		return unreachable(path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &exitError{code: 1, err: fmt.Errorf("admin: trace refused: %s", strings.TrimSpace(string(msg)))}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	dec := json.NewDecoder(resp.Body)
	frames, ended := 0, false
	var skipped uint64
	for {
		var ev director.TraceEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				break // interrupted
			}
			if errors.Is(err, io.EOF) && ended {
				break
			}
			out.Flush()
			return fmt.Errorf("admin: the trace stream broke after %d frames: %v", frames, err)
		}
		switch {
		case ev.Filter != "":
			fmt.Fprintf(stderr, "udr: tracing %s\n", ev.Filter)
		case ev.End != "":
			ended = true
			skipped = ev.Skipped
		case ev.Line != "":
			frames++
			fmt.Fprintf(out, "%s %s\n", ev.Time.Local().Format("15:04:05.000000"), ev.Line)
			if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) == 0 {
				out.Flush() // a live view: what came is shown at once
			}
			if ng != nil {
				ci := gopacket.CaptureInfo{Timestamp: ev.Time, CaptureLength: len(ev.Frame), Length: max(ev.Length, len(ev.Frame)), InterfaceIndex: 0}
				if err := ng.WritePacketWithOptions(ci, ev.Frame, pcapgo.NgPacketOptions{Comments: []string{ev.Line}}); err != nil {
					return fmt.Errorf("admin: %s: %v", write, err)
				}
			}
		case ev.Skipped != 0:
			out.Flush()
			fmt.Fprintf(stderr, "udr: trace: %d matching frames skipped so far: more than the trace can show\n", ev.Skipped)
			skipped = ev.Skipped
		}
	}
	out.Flush()
	if ng != nil {
		if err := ng.Flush(); err != nil {
			return fmt.Errorf("admin: %s: %v", write, err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("admin: %s: %v", write, err)
		}
	}
	fmt.Fprintf(stderr, "udr: trace: %d frames, %d skipped\n", frames, skipped)
	return nil
}
