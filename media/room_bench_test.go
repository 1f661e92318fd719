//go:build linux

package media

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/rtpsynth"
)

// BenchmarkRoom plays a 1.8 Mbit/s stream (rtpsynth: ~220 packets/s, 30 frames/s)
// for 5 s to N WHEP viewers, all real Pion peers on loopback in this process, and
// reports the share of packets the viewers did not receive (loss-%), the forwarding
// thread's CPU per packet written (ns/pkt), and the whole process's CPU use (cores),
// which includes the N receiving clients. Run with -benchtime 1x; set
// LIVEROOM_BENCH_VIEWERS (e.g. 1000) to add a larger room.
func BenchmarkRoom(b *testing.B) {
	sizes := []int{100, 300}
	if n, err := strconv.Atoi(os.Getenv("LIVEROOM_BENCH_VIEWERS")); err == nil && n > 0 {
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) { benchRoom(b, n) })
	}
}

// countingSink counts a viewer's packets.
type countingSink struct {
	pc    *webrtc.PeerConnection
	n     atomic.Int64
	first chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func benchRoom(b *testing.B, viewers int) {
	env := newTestEnv(b, Config{})
	f := benchBroadcast(env)
	defer f.close()

	api := rawClientAPI(b)
	tok := mint(b, auth.RoleViewer, "bench")
	sinks := make([]*countingSink, 0, viewers)
	defer func() {
		for _, s := range sinks {
			_ = s.pc.GracefulClose()
			s.wg.Wait()
		}
	}()
	for range viewers {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		s := &countingSink{pc: pc, first: make(chan struct{})}
		sinks = append(sinks, s)
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			b.Fatal(err)
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			s.wg.Add(1)
			defer s.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				s.n.Add(1)
				s.once.Do(func() { close(s.first) })
			}
		})
		if code, _, body := signal(b, pc, env.web.URL+"/whep/bench", tok); code != http.StatusCreated {
			b.Fatalf("WHEP: %d %s", code, body)
		}
	}

	// The 1.8 Mbit/s 720p30 stream (~220 packets/s of 1022 bytes), a keyframe
	// every 2 s.
	stream := rtpsynth.NewH264(rtpsynth.H264Config{})
	var buf [1500]byte
	seq, frames := uint16(0), 0
	frame := func() int {
		payloads := stream.Frame(frames%60 == 0)
		for i, p := range payloads {
			h := rtp.Header{Version: 2, PayloadType: 102, SSRC: 0xfeed, SequenceNumber: seq,
				Timestamp: uint32(frames * 3000), Marker: i == len(payloads)-1}
			n, _ := h.MarshalTo(buf[:])
			f.forward(buf[:n+copy(buf[n:], p)])
			seq++
		}
		frames++
		return len(payloads)
	}
	tk := time.NewTicker(time.Second / 30)
	defer tk.Stop()
	// Warm up until every viewer has started.
	for _, s := range sinks {
		for started := false; !started; {
			select {
			case <-s.first:
				started = true
			case <-tk.C:
				frame()
			}
		}
	}
	// Let in-flight packets land, then measure a 5 s window.
	time.Sleep(300 * time.Millisecond)
	before := make([]int64, len(sinks))
	for i, s := range sinks {
		before[i] = s.n.Load()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r0, r1 syscall.Rusage
	var t0, t1 unix.Timespec
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	start := time.Now()
	sent := 0
	var sendCPU int64
	for b.Loop() {
		for time.Since(start) < 5*time.Second {
			<-tk.C
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
			sent += frame()
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
			sendCPU += t1.Nano() - t0.Nano()
		}
	}
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	time.Sleep(500 * time.Millisecond) // let the last packets land (a benchmark, not a test)
	var got int64
	for i, s := range sinks {
		got += s.n.Load() - before[i]
	}
	want := int64(sent) * int64(viewers)
	proc := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	b.ReportMetric(100*float64(want-got)/float64(want), "loss-%")
	b.ReportMetric(float64(sendCPU)/float64(want), "ns/pkt")
	b.ReportMetric(float64(proc)/float64(elapsed.Nanoseconds()), "cores")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "pkts/s-in")
}
