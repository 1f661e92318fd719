package media

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/embednats"
)

const testSecret = "media-test-secret"

// testEnv is a media server on loopback (its ICE on 127.0.0.1 unless cfg says
// otherwise) with an embedded NATS, served over httptest; its PublicURL is its
// httptest URL.
type testEnv struct {
	srv *Server
	web *httptest.Server
	nc  *nats.Conn
	reg *prometheus.Registry
}

func newTestEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	return newTestEnvOn(t, embednats.Test(t).ClientURL(), cfg)
}

// newTestEnvOn is a testEnv against the NATS server at natsURL (several media
// servers may share one).
func newTestEnvOn(t testing.TB, natsURL string, cfg Config) *testEnv {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.Secret = []byte(testSecret)
	if cfg.ICEAddresses == nil {
		cfg.ICEAddresses = []string{"127.0.0.1"}
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	web := httptest.NewUnstartedServer(nil)
	cfg.PublicURL = "http://" + web.Listener.Addr().String()
	srv, err := New(cfg, nc, reg)
	if err != nil {
		web.Close()
		t.Fatal(err)
	}
	web.Config.Handler = srv.Handler()
	web.Start()
	t.Cleanup(func() {
		web.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testEnv{srv: srv, web: web, nc: nc, reg: reg}
}

func mint(t testing.TB, role auth.Role, rooms ...string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), auth.Claims{UserID: "u-" + string(role), Role: role, Rooms: rooms, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clientAPI is a Pion API for test clients: stock codecs and interceptors, but only
// 127.0.0.1 candidates and no mDNS, so nothing leaves the loopback interface.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(clientSettings()))
}

// clientSettings offer only 127.0.0.1 candidates and no mDNS.
func clientSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// addTrack adds track to pc and drains its sender's RTCP until the sender stops, in a
// goroutine counted in wg.
func addTrack(t testing.TB, pc *webrtc.PeerConnection, track webrtc.TrackLocal, wg *sync.WaitGroup) {
	t.Helper()
	s, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := s.Read(buf); err != nil {
				return
			}
		}
	})
}

// onConnected returns a channel that is closed once pc is connected. It sets pc's
// connection state handler.
func onConnected(pc *webrtc.PeerConnection) <-chan struct{} {
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	return connected
}

// completeOffer sets pc's local description to a new offer and returns it once all
// candidates are gathered.
func completeOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// signal sends pc's complete offer to url and applies the answer. It returns the
// HTTP status, the resource URL, and the body when the status is not 201.
func signal(t testing.TB, pc *webrtc.PeerConnection, url, token string) (int, string, string) {
	t.Helper()
	code, hdr, body := post(t, url, token, completeOffer(t, pc))
	if code != http.StatusCreated {
		return code, "", body
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	return code, hdr.Get("Location"), body
}

func post(t testing.TB, url, token, sdp string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(sdp))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// clipPacket is one pre-packetized RTP packet of a clip.
type clipPacket struct {
	pkt      *rtp.Packet
	keyStart bool // first packet of a keyframe (SPS/IDR access unit)
}

// clip is a track's packets grouped by the tick they are sent on.
type clip struct {
	ticks    [][]clipPacket
	interval time.Duration
	index    map[string]int // payload → packet index (first occurrence)
	dup      map[string]bool
	keyStart []bool // by packet index
	last     []byte // the last packet's payload
	total    int
}

func (c *clip) add(tick []clipPacket) {
	for _, p := range tick {
		if _, dup := c.index[string(p.pkt.Payload)]; dup {
			c.dup[string(p.pkt.Payload)] = true
		} else {
			c.index[string(p.pkt.Payload)] = c.total
		}
		c.keyStart = append(c.keyStart, p.keyStart)
		c.last = p.pkt.Payload
		c.total++
	}
	c.ticks = append(c.ticks, tick)
}

func newClip(interval time.Duration) *clip {
	return &clip{interval: interval, index: map[string]int{}, dup: map[string]bool{}}
}

// h264Clip packetizes testdata/clip.h264 into one tick per access unit (30 fps).
func h264Clip(t testing.TB, pt uint8) *clip {
	t.Helper()
	f, err := os.Open("testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	pz := rtp.NewPacketizer(1200, pt, 0x1234, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	c := newClip(time.Second / 30)
	var au bytes.Buffer
	key := false
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch nal.UnitType {
		case h264reader.NalUnitTypeAUD:
			continue
		case h264reader.NalUnitTypeSPS, h264reader.NalUnitTypeCodedSliceIdr:
			key = true
		}
		au.Write([]byte{0, 0, 0, 1})
		au.Write(nal.Data)
		if nal.UnitType != h264reader.NalUnitTypeCodedSliceIdr && nal.UnitType != h264reader.NalUnitTypeCodedSliceNonIdr {
			continue
		}
		var tick []clipPacket
		for i, p := range pz.Packetize(au.Bytes(), 3000) {
			tick = append(tick, clipPacket{pkt: p, keyStart: key && i == 0})
		}
		c.add(tick)
		au.Reset()
		key = false
	}
	return c
}

// vp8Clip packetizes testdata/clip.ivf, one tick per frame.
func vp8Clip(t testing.TB, pt uint8) *clip {
	t.Helper()
	f, err := os.Open("testdata/clip.ivf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	pz := rtp.NewPacketizer(1200, pt, 0x5678, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	c := newClip(time.Second / 30)
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		key := len(frame) > 0 && frame[0]&0x01 == 0
		var tick []clipPacket
		for i, p := range pz.Packetize(frame, 3000) {
			tick = append(tick, clipPacket{pkt: p, keyStart: key && i == 0})
		}
		c.add(tick)
	}
	return c
}

// opusClip packetizes testdata/clip.ogg, one 20 ms packet per tick.
func opusClip(t testing.TB, pt uint8) *clip {
	t.Helper()
	f, err := os.Open("testdata/clip.ogg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	pz := rtp.NewPacketizer(1200, pt, 0x9abc, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	c := newClip(20 * time.Millisecond)
	for {
		page, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(page, []byte("OpusHead")) || bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		var tick []clipPacket
		for _, p := range pz.Packetize(page, 960) {
			tick = append(tick, clipPacket{pkt: p, keyStart: true})
		}
		c.add(tick)
	}
	return c
}

// play sends a clip in real time; at is closed after tick n (if at is not nil).
func play(ctx context.Context, track *webrtc.TrackLocalStaticRTP, c *clip, n int, at chan<- struct{}) error {
	tk := time.NewTicker(c.interval)
	defer tk.Stop()
	for i, tick := range c.ticks {
		for _, p := range tick {
			if err := track.WriteRTP(p.pkt); err != nil {
				return err
			}
		}
		if i == n && at != nil {
			close(at)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
	return nil
}

// received records what a viewer got on one track.
type received struct {
	c *clip

	mu        sync.Mutex
	n         int
	first     [][]byte       // the first few payloads
	seen      map[int64]bool // extended sequence numbers
	lastSeq   uint16
	ext       int64
	minExt    int64
	maxExt    int64
	lastSeen  chan struct{} // closed when the clip's last packet arrives
	firstSeen chan struct{} // closed when the first packet arrives
	closeOnce sync.Once
}

func newReceived(c *clip) *received {
	return &received{c: c, seen: map[int64]bool{}, lastSeen: make(chan struct{}), firstSeen: make(chan struct{})}
}

func (r *received) add(p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.first) < 16 {
		r.first = append(r.first, append([]byte(nil), p.Payload...))
	}
	if r.n == 0 {
		close(r.firstSeen)
		r.ext = 1 << 20
		r.minExt, r.maxExt = r.ext, r.ext
	} else {
		r.ext += int64(int16(p.SequenceNumber - r.lastSeq))
	}
	r.lastSeq = p.SequenceNumber
	r.seen[r.ext] = true
	r.minExt, r.maxExt = min(r.minExt, r.ext), max(r.maxExt, r.ext)
	r.n++
	if bytes.Equal(p.Payload, r.c.last) {
		r.closeOnce.Do(func() { close(r.lastSeen) })
	}
}

// check reports the first packet's clip index, whether it is a keyframe start, how
// many packets were expected from there to the clip's end, and how many distinct
// packets came, and the gaps in the sequence numbers.
func (r *received) check() (start int, key bool, expected, got, missing int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The first packet's clip index, found through the first payload that occurs
	// once in the clip (SPS/PPS packets repeat at every keyframe).
	start = -1
	for k, p := range r.first {
		if i, ok := r.c.index[string(p)]; ok && !r.c.dup[string(p)] {
			start = i - k
			break
		}
	}
	if start < 0 {
		return -1, false, 0, len(r.seen), 0
	}
	span := int(r.maxExt - r.minExt + 1)
	return start, r.c.keyStart[start], r.c.total - start, len(r.seen), span - len(r.seen)
}

// metricValue reads a gauge or counter.
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	t.Fatal("not a gauge or counter")
	return 0
}

// checkGotClip waits for the publisher's two tracks to finish playing, then for every
// viewer to get the clip's last packets, and checks that each viewer's video started
// on a keyframe and missed nothing after it, and that its audio came with no gap.
func checkGotClip(ctx context.Context, t *testing.T, who string, playing *sync.WaitGroup, playErr <-chan error, viewers []*testViewer, video *clip) {
	t.Helper()
	playing.Wait()
	for range 2 {
		if err := <-playErr; err != nil {
			t.Fatalf("publishing: %v", err)
		}
	}
	for i, v := range viewers {
		for _, r := range []*received{v.video, v.audio} {
			select {
			case <-r.lastSeen:
			case <-ctx.Done():
				t.Fatalf("%s %d did not get the clip's last packet", who, i)
			}
		}
	}
	for i, v := range viewers {
		start, key, expected, got, missing := v.video.check()
		t.Logf("%s %d video: started at packet %d of %d, got %d of %d expected, %d missing", who, i, start, video.total, got, expected, missing)
		if start < 0 || !key {
			t.Errorf("%s %d: first video packet (clip index %d) is not a keyframe start", who, i, start)
		}
		if got != expected || missing != 0 {
			t.Errorf("%s %d video: got %d packets, want %d; %d missing", who, i, got, expected, missing)
		}
		if _, _, _, agot, amissing := v.audio.check(); agot == 0 || amissing != 0 {
			t.Errorf("%s %d audio: got %d packets, %d missing", who, i, agot, amissing)
		}
	}
}

// newClipPublisher is a publisher peer with the testdata clip's two tracks, H.264
// and Opus, whose RTCP is drained until pubRTCP's goroutines end (the peer closes).
func newClipPublisher(t *testing.T, api *webrtc.API) (pub *webrtc.PeerConnection, vtrack, atrack *webrtc.TrackLocalStaticRTP, pubRTCP *sync.WaitGroup) {
	t.Helper()
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	vtrack, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	atrack, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	pubRTCP = new(sync.WaitGroup)
	addTrack(t, pub, vtrack, pubRTCP)
	addTrack(t, pub, atrack, pubRTCP)
	return pub, vtrack, atrack, pubRTCP
}

// whepAnswer is the server's answer to one WHEP POST.
type whepAnswer struct {
	code           int
	body, location string
}

// postOffers POSTs every offer to url at once, each on its own goroutine; wait
// returns the answers in the offers' order once all came back.
func postOffers(url, token string, offers []string) (wait func() []whepAnswer) {
	answers := make([]whepAnswer, len(offers))
	var posts sync.WaitGroup
	for i := range offers {
		posts.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(offers[i]))
			req.Header.Set("Content-Type", "application/sdp")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i] = whepAnswer{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = whepAnswer{code: resp.StatusCode, body: string(b), location: resp.Header.Get("Location")}
		})
	}
	return func() []whepAnswer {
		posts.Wait()
		return answers
	}
}

// applyAnswers fails unless every answer is 201 Created, and sets each as the remote
// description of its peer.
func applyAnswers(t *testing.T, pcs []*webrtc.PeerConnection, answers []whepAnswer) {
	t.Helper()
	for i, a := range answers {
		if a.code != http.StatusCreated {
			t.Fatalf("viewer %d: WHEP POST: %d %s", i, a.code, a.body)
		}
		if err := pcs[i].SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.body}); err != nil {
			t.Fatal(err)
		}
	}
}
