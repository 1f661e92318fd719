package media

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
)

// livePublisher is a Pion WHIP client that behaves like a browser's encoder: its VP8
// track sends a keyframe on its first frame and then only when a PLI asks for one;
// its Opus track starts before the video does, as a browser's audio usually does.
type livePublisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	plis         atomic.Int64  // PLIs for the video SSRC
	keyAsked     atomic.Bool   // the next frame is a keyframe
	startVideo   chan struct{} // closed by the test: the video's first frame goes out

	rtcpReaders   sync.WaitGroup
	senders       sync.WaitGroup
	cancelSenders context.CancelFunc
}

// Frame reasons, in a synthetic VP8 frame's payload after the payload header.
const (
	frameDelta byte = iota
	frameFirst      // the encoder's first frame
	framePLI        // a keyframe sent because of a PLI
)

// vp8Frame is one packet holding a whole synthetic VP8 frame: payload descriptor
// (S=1, partition 0), payload header (P=0 on keyframes), frame number, reason.
func vp8Frame(n uint32, reason byte) []byte {
	p := make([]byte, 0, 64)
	hdr := byte(0x01) // P=1: interframe
	if reason != frameDelta {
		hdr = 0x00
	}
	p = append(p, 0x10, hdr, 0, 0)
	p = binary.BigEndian.AppendUint32(p, n)
	p = append(p, reason)
	return append(p, make([]byte, 40)...)
}

func newLivePublisher(t *testing.T, api *webrtc.API) *livePublisher {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &livePublisher{pc: pc, startVideo: make(chan struct{})}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.audio, p.video} {
		s, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		video := tr == p.video
		p.rtcpReaders.Go(func() {
			for {
				pkts, _, err := s.ReadRTCP()
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					pli, ok := pkt.(*rtcp.PictureLossIndication)
					if ok && video && pli.MediaSSRC == uint32(s.GetParameters().Encodings[0].SSRC) {
						p.plis.Add(1)
						p.keyAsked.Store(true)
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		if p.cancelSenders != nil {
			p.cancelSenders()
		}
		p.senders.Wait()
		_ = pc.GracefulClose()
		p.rtcpReaders.Wait()
	})
	return p
}

// run sends audio every 20 ms from now on, and 30 video frames a second once
// startVideo is closed, until the test ends.
func (p *livePublisher) run(withVideo bool) {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancelSenders = cancel
	p.senders.Go(func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		seq, ts := uint16(1000), uint32(0)
		for {
			if p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: []byte{0xfc, 0xff, 0xfe}}) != nil {
				return
			}
			seq, ts = seq+1, ts+960
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	})
	if !withVideo {
		return
	}
	p.senders.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-p.startVideo:
		}
		tk := time.NewTicker(time.Second / 30)
		defer tk.Stop()
		seq, ts := uint16(5000), uint32(0)
		for n := uint32(0); ; n++ {
			reason := frameDelta
			switch {
			case n == 0:
				reason = frameFirst
			case p.keyAsked.Swap(false):
				reason = framePLI
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: seq, Timestamp: ts}, Payload: vp8Frame(n, reason)}
			if p.video.WriteRTP(pkt) != nil {
				return
			}
			seq, ts = seq+1, ts+3000
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	})
}

// joinViewer is a Pion WHEP client that records its first video payload.
type joinViewer struct {
	pc         *webrtc.PeerConnection
	firstVideo chan []byte // gets the first video payload
	firstAudio chan struct{}
	videoOnce  sync.Once
	audioOnce  sync.Once
	readers    sync.WaitGroup
}

func newJoinViewer(t *testing.T, api *webrtc.API) *joinViewer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &joinViewer{pc: pc, firstVideo: make(chan []byte, 1), firstAudio: make(chan struct{})}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.readers.Add(1)
		defer v.readers.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				v.videoOnce.Do(func() { v.firstVideo <- append([]byte(nil), p.Payload...) })
			} else {
				v.audioOnce.Do(func() { close(v.firstAudio) })
			}
		}
	})
	t.Cleanup(func() {
		_ = pc.GracefulClose()
		v.readers.Wait()
	})
	return v
}

// signalled reports, once, that a WHEP offer has been read by the server.
type signalled struct {
	io.ReadCloser
	once *sync.Once
	ch   chan struct{}
}

func (s signalled) Read(b []byte) (int, error) {
	n, err := s.ReadCloser.Read(b)
	if err == io.EOF {
		s.once.Do(func() { close(s.ch) })
	}
	return n, err
}

// publish does the publisher's WHIP exchange and starts its senders.
func (p *livePublisher) publish(t *testing.T, url string, withVideo bool) {
	t.Helper()
	code, _, body := post(t, url+"/whip/r1", mint(t, auth.RoleHost, "r1"), completeOffer(t, p.pc))
	if code != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", code, body)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	p.run(withVideo)
}

// liveStatuses collects the room's live statuses where gateways get them.
func liveStatuses(t *testing.T, env *testEnv, room string) <-chan LiveStatus {
	t.Helper()
	ch := make(chan LiveStatus, 16)
	sub, err := env.nc.Subscribe("lr.ev."+room+".live", func(m *nats.Msg) {
		var st LiveStatus
		if json.Unmarshal(m.Data, &st) == nil {
			ch <- st
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// kinds lists a status's track kinds.
func kinds(st LiveStatus) string {
	var k []string
	for _, tr := range st.Tracks {
		k = append(k, tr.Kind)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

// TestJoinAsVideoStarts has viewers ask for a room whose publisher has started its
// audio but not yet its video (a browser's usual order), and the video's first frame
// go out while their requests are in the server. The publisher, like a browser, sends
// a keyframe only first and on PLI. Every viewer must get audio and video, the video
// starting on a keyframe sent for a PLI, and the room must be announced live with
// both tracks at once.
func TestJoinAsVideoStarts(t *testing.T) {
	env := newTestEnv(t, Config{})
	statuses := liveStatuses(t, env, "r1")
	// Tell when the first viewer's offer has been read: its tracks are chosen then.
	offerRead := make(chan struct{})
	var once sync.Once
	h := env.srv.Handler()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/whep/") {
			r.Body = signalled{ReadCloser: r.Body, once: &once, ch: offerRead}
		}
		h.ServeHTTP(w, r)
	}))
	defer web.Close()
	api := clientAPI(t)

	pub := newLivePublisher(t, api)
	pub.publish(t, web.URL, true)
	waitFirstTrack(t, env.srv, "r1") // the audio

	const viewers = 3
	vs := make([]*joinViewer, viewers)
	offers := make([]string, viewers)
	for i := range vs {
		vs[i] = newJoinViewer(t, api)
		offers[i] = completeOffer(t, vs[i].pc)
	}
	token := mint(t, auth.RoleViewer, "r1")
	wait := postOffers(web.URL+"/whep/r1", token, offers)
	<-offerRead
	close(pub.startVideo)
	pcs := make([]*webrtc.PeerConnection, viewers)
	for i, v := range vs {
		pcs[i] = v.pc
	}
	applyAnswers(t, pcs, wait())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, v := range vs {
		select {
		case <-v.firstAudio:
		case <-ctx.Done():
			t.Fatalf("viewer %d: no audio", i)
		}
		select {
		case p := <-v.firstVideo:
			if !vp8Keyframe(p) {
				t.Errorf("viewer %d: first video packet is not a keyframe: %x", i, p)
			} else if p[8] != framePLI {
				t.Errorf("viewer %d: first video frame %d has reason %d, want a keyframe sent for a PLI", i, binary.BigEndian.Uint32(p[4:8]), p[8])
			}
		case <-ctx.Done():
			t.Fatalf("viewer %d: no video (publisher got %d PLIs)", i, pub.plis.Load())
		}
	}
	if pub.plis.Load() == 0 {
		t.Error("the publisher got no PLI")
	}
	select {
	case st := <-statuses:
		if !st.Live || kinds(st) != "audio,video" {
			t.Errorf("first live status %+v, want live with audio and video", st)
		}
	case <-ctx.Done():
		t.Fatal("no live status")
	}
}

// TestTrackWait: a publisher that announces audio and video but sends only audio goes
// live TrackWait after its audio started; a viewer waiting meanwhile gets the audio,
// and its video section is answered inactive, not sendonly with nothing to send.
func TestTrackWait(t *testing.T) {
	env := newTestEnv(t, Config{TrackWait: 50 * time.Millisecond})
	statuses := liveStatuses(t, env, "r1")
	api := clientAPI(t)
	pub := newLivePublisher(t, api)
	pub.publish(t, env.web.URL, false)
	waitFirstTrack(t, env.srv, "r1")

	v := newJoinViewer(t, api)
	code, _, body := post(t, env.web.URL+"/whep/r1", mint(t, auth.RoleViewer, "r1"), completeOffer(t, v.pc))
	if code != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", code, body)
	}
	for _, sec := range strings.Split(body, "m=")[1:] {
		if strings.HasPrefix(sec, "video") && (!strings.Contains(sec, "a=inactive") || strings.Contains(sec, "a=ssrc")) {
			t.Errorf("video section of the answer, with no video to send:\nm=%s", sec)
		}
	}
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-v.firstAudio:
	case <-ctx.Done():
		t.Fatal("no audio")
	}
	select {
	case st := <-statuses:
		if !st.Live || kinds(st) != "audio" {
			t.Errorf("first live status %+v, want live with audio", st)
		}
	case <-ctx.Done():
		t.Fatal("no live status")
	}
}

// waitFirstTrack waits until the room's broadcast has received its first track.
func waitFirstTrack(t *testing.T, s *Server, room string) *broadcast {
	t.Helper()
	s.mu.Lock()
	b := s.rooms[room]
	s.mu.Unlock()
	if b == nil {
		t.Fatalf("room %s has no broadcast", room)
	}
	<-b.firstTrack
	return b
}
