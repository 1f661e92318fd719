//go:build linux

package media

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// BenchmarkForward measures the server's cost per forwarded RTP packet, 1 publisher
// track → N viewers, all real Pion peer connections on loopback in this process:
//
//   - ours: the forwarder (shared ring, per-viewer header, no interceptors), viewers
//     joined over WHEP;
//   - stock: Pion's TrackLocalStaticRTP with Pion's default interceptors per viewer,
//     on the same UDP mux.
//
// Each packet goes to every viewer from the benchmark's goroutine, synchronously in
// both cases; measure says what is reported.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("ours/viewers=%d", n), func(b *testing.B) { benchOurs(b, n) })
		b.Run(fmt.Sprintf("stock/viewers=%d", n), func(b *testing.B) { benchStock(b, n) })
	}
}

// benchStream is a synthetic 720p-like H.264 stream: 1100-byte FU-A packets, 6 per
// frame, a keyframe (STAP-A SPS/PPS first) every 60 frames. packet(i) rewrites a
// template in place with packet i's sequence number and timestamp, so sequence
// numbers never repeat (a viewer's SRTP replay check would drop repeats).
type benchStream struct {
	key, delta []byte
}

func newBenchStream() *benchStream {
	mk := func(payload []byte) []byte {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SSRC: 0xfeed}, Payload: payload}
		b, _ := p.Marshal()
		return b
	}
	return &benchStream{
		key:   mk(append([]byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, make([]byte, 1091)...)),
		delta: mk(append([]byte{0x7c, 0x01}, make([]byte, 1098)...)),
	}
}

func (s *benchStream) packet(i int) []byte { return s.packetN(i, i%360 == 0) }

// packetN is packet i, a keyframe start or not.
func (s *benchStream) packetN(i int, key bool) []byte {
	b := s.delta
	if key {
		b = s.key
	}
	seq, ts := uint16(i), uint32(i/6)*3000
	b[1] = 102
	if i%6 == 5 {
		b[1] |= 0x80
	}
	b[2], b[3] = byte(seq>>8), byte(seq)
	b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
	return b
}

// sink is a viewer on the client side: it drains its track and reports the first packet.
type sink struct {
	pc    *webrtc.PeerConnection
	first chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// rawClientAPI receives without interceptors, so the receiving side costs the same in
// both benchmarks.
func rawClientAPI(b *testing.B) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		b.Fatal(err)
	}
	se := clientSettings()
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

func newSink(b *testing.B, api *webrtc.API) *sink {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		b.Fatal(err)
	}
	s := &sink{pc: pc, first: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		s.wg.Add(1)
		defer s.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			s.once.Do(func() { close(s.first) })
		}
	})
	return s
}

func (s *sink) close() {
	_ = s.pc.GracefulClose()
	s.wg.Wait()
}

// measure runs send b.N times and reports, per packet written to a viewer, the CPU
// time of the sending thread (ns/pkt: the forwarding path itself, syscalls included)
// and of the whole process (proc-cpu-ns/pkt: also the viewers' receiving side, GC
// and every background goroutine).
// heap-B/viewer is the live heap after the loop, less the heap before the viewers
// were created (heapBefore), per viewer: per-viewer packet copies show here.
func measure(b *testing.B, viewers int, heapBefore uint64, send func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	var t0, t1 unix.Timespec
	b.ReportAllocs()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
	for i := 0; b.Loop(); i++ {
		send(i)
	}
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	proc := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
	pkts := float64(b.N) * float64(viewers)
	b.ReportMetric(float64(t1.Nano()-t0.Nano())/pkts, "ns/pkt")
	b.ReportMetric(float64(proc)/pkts, "proc-cpu-ns/pkt")
	b.ReportMetric((float64(liveHeap())-float64(heapBefore))/float64(viewers), "heap-B/viewer")
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func benchOurs(b *testing.B, viewers int) {
	env := newTestEnv(b, Config{})
	f := benchBroadcast(env)
	defer f.close()

	api := rawClientAPI(b)
	tok := mint(b, auth.RoleViewer, "bench")
	heap0 := liveHeap()
	var sinks []*sink
	for range viewers {
		s := newSink(b, api)
		if code, _, body := signal(b, s.pc, env.web.URL+"/whep/bench", tok); code != http.StatusCreated {
			b.Fatalf("WHEP: %d %s", code, body)
		}
		sinks = append(sinks, s)
	}
	defer func() {
		for _, s := range sinks {
			s.close()
		}
	}()
	stream := newBenchStream()
	warm := waitFirst(b, sinks, func(i int) { f.forward(stream.packet(i)) })
	measure(b, viewers, heap0, func(i int) { f.forward(stream.packet(warm + i)) })
}

func benchStock(b *testing.B, viewers int) {
	env := newTestEnv(b, Config{}) // for its UDP mux and setting engine
	se, err := settingEngine(env.srv.cfg, env.srv.udpMux, nil)
	if err != nil {
		b.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		b.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		b.Fatal(err)
	}
	stock := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "bench")
	if err != nil {
		b.Fatal(err)
	}
	api := rawClientAPI(b)
	heap0 := liveHeap()
	var sinks []*sink
	var servers []*webrtc.PeerConnection
	var drains sync.WaitGroup
	for range viewers {
		s := newSink(b, api)
		sinks = append(sinks, s)
		pc, err := stock.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		servers = append(servers, pc)
		sender, err := pc.AddTrack(track)
		if err != nil {
			b.Fatal(err)
		}
		drains.Add(1)
		go func() { // always drain RTCP
			defer drains.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
		exchange(b, s.pc, pc)
	}
	defer func() {
		for _, s := range sinks {
			s.close()
		}
		for _, pc := range servers {
			_ = pc.GracefulClose()
		}
		drains.Wait()
	}()
	stream := newBenchStream()
	var p rtp.Packet
	write := func(i int) {
		if err := p.Unmarshal(stream.packet(i)); err == nil {
			_ = track.WriteRTP(&p)
		}
	}
	warm := waitFirst(b, sinks, write)
	measure(b, viewers, heap0, func(i int) { write(warm + i) })
}

// exchange does offer/answer between a client and a server peer connection in
// process (non-trickle).
func exchange(b *testing.B, client, server *webrtc.PeerConnection) {
	offer, err := client.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(client)
	if err := client.SetLocalDescription(offer); err != nil {
		b.Fatal(err)
	}
	<-g
	if err := server.SetRemoteDescription(*client.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	ans, err := server.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(server)
	if err := server.SetLocalDescription(ans); err != nil {
		b.Fatal(err)
	}
	<-g
	if err := client.SetRemoteDescription(*server.LocalDescription()); err != nil {
		b.Fatal(err)
	}
}

// waitFirst sends warm-up packets, paced, until every viewer has received one, and
// returns how many it sent.
func waitFirst(b *testing.B, sinks []*sink, send func(i int)) int {
	deadline := time.After(60 * time.Second)
	tk := time.NewTicker(2 * time.Millisecond)
	defer tk.Stop()
	i := 0
	for _, s := range sinks {
		for done := false; !done; {
			select {
			case <-s.first:
				done = true
			case <-tk.C:
				send(i)
				i++
			case <-deadline:
				b.Fatal("viewers did not start within 60s")
			}
		}
	}
	return i
}

// benchBroadcast registers a live room "bench" whose one H.264 forwarder the benchmark
// feeds instead of a publisher. The caller closes the forwarder.
func benchBroadcast(env *testEnv) *forwarder {
	codec := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 102,
	}
	f := newForwarder(codec, webrtc.RTPCodecTypeVideo, nil, env.srv.cfg, env.srv.m, nil)
	// live: every track is there, so WHEP requests are answered at once.
	bc := &broadcast{s: env.srv, room: "bench", id: newID(), done: make(chan struct{}), viewers: map[string]*viewer{}, tracks: []*forwarder{f}, live: true}
	env.srv.mu.Lock()
	env.srv.rooms["bench"] = bc
	env.srv.mu.Unlock()
	return f
}
