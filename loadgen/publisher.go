package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/liveroom/liveroom/auth"
	"github.com/liveroom/liveroom/internal/rtpsynth"
)

// publisher is the run's host on the media server: a Pion WHIP client that sends a
// synthetic H.264 stream (rtpsynth: 720p30, Config.WHEPBitrate), paced one frame per
// 1/30 s, with a keyframe every Config.WHEPKeyframeEvery and, like a browser's
// encoder, on the next frame after a PLI or FIR. So a viewer's time to its first
// keyframe measures the media server's merged keyframe requests, not the GOP.
//
// RTP timestamps follow the wall clock at the moment each frame is sent, so a viewer
// can compare them with arrival times (the delay drift in the report).
type publisher struct {
	// set in newPublisher
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	stream *rtpsynth.H264
	every  time.Duration

	keyAsked atomic.Bool // a PLI or FIR came: the next frame is a keyframe
	rtcpDone sync.WaitGroup

	// counters, read after run returns (plis while it runs)
	plis      atomic.Int64
	frames    int64
	keyframes int64
	onRequest int64 // keyframes sent because of a PLI/FIR
	packets   int64
	bytes     int64
}

// PublisherReport is what the run's WHIP publisher sent.
type PublisherReport struct {
	// Frames, Keyframes (periodic and on request), KeyframesOnRequest (answering a
	// PLI/FIR), PLIs (PLI and FIR packets received), Packets and bytes of payload.
	Frames             int64 `json:"frames"`
	Keyframes          int64 `json:"keyframes"`
	KeyframesOnRequest int64 `json:"keyframes_on_request"`
	PLIs               int64 `json:"plis"`
	Packets            int64 `json:"packets"`
	// PacketsPerS and KbitPerS are averages over the time it sent.
	PacketsPerS float64 `json:"packets_per_s"`
	KbitPerS    float64 `json:"kbit_per_s"`
	// MissedFrames counts frame times the pacer skipped (it fell behind).
	MissedFrames int64  `json:"missed_frames"`
	Error        string `json:"error,omitempty"`
}

func newPublisher(api *webrtc.API, cfg *Config) (*publisher, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, "video", "loadgen")
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	p := &publisher{
		pc: pc, track: track, sender: sender, every: cfg.WHEPKeyframeEvery,
		stream: rtpsynth.NewH264(rtpsynth.H264Config{Bitrate: cfg.WHEPBitrate}),
	}
	p.rtcpDone.Go(p.readRTCP)
	return p, nil
}

// readRTCP drains the sender's RTCP (always: Pion's interceptors need it read) and
// turns PLI and FIR for our SSRC into a keyframe on the next frame.
func (p *publisher) readRTCP() {
	ssrc := uint32(p.sender.GetParameters().Encodings[0].SSRC)
	for {
		pkts, _, err := p.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch k := pkt.(type) {
			case *rtcp.PictureLossIndication:
				if k.MediaSSRC == ssrc {
					p.plis.Add(1)
					p.keyAsked.Store(true)
				}
			case *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.keyAsked.Store(true)
			}
		}
	}
}

// publish signals over WHIP with a host token and waits until the connection is up.
func (p *publisher) publish(ctx context.Context, client *http.Client, endpoint, room string, secret []byte) (string, error) {
	tok, err := auth.Mint(secret, auth.Claims{
		UserID: "loadgen-publisher", Name: "Host", Role: auth.RoleHost,
		Rooms: []string{room}, Expires: time.Now().Add(24 * time.Hour),
	})
	if err != nil {
		return "", err
	}
	connected := make(chan struct{})
	failed := make(chan struct{})
	var once, failOnce sync.Once
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed:
			failOnce.Do(func() { close(failed) })
		}
	})
	resource, err := exchange(ctx, client, p.pc, endpoint, tok, nil)
	if errors.Is(err, errNotLive) {
		err = &httpStatusError{http.StatusNotFound, "WHIP endpoint not found"}
	}
	if err != nil {
		return "", fmt.Errorf("WHIP: %w", err)
	}
	select {
	case <-connected:
		return resource, nil
	case <-failed:
		return resource, errors.New("WHIP: connection failed")
	case <-ctx.Done():
		return resource, ctx.Err()
	}
}

// run sends frames until ctx ends. It returns the first write error.
func (p *publisher) run(ctx context.Context) error {
	interval := p.stream.FrameInterval()
	tk := time.NewTicker(interval)
	defer tk.Stop()
	start := time.Now()
	var lastKey time.Time
	seq := uint16(time.Now().UnixNano())
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2}}
	for {
		now := time.Now()
		key := lastKey.IsZero() || now.Sub(lastKey) >= p.every
		if p.keyAsked.Swap(false) && !key {
			key = true
			p.onRequest++
		}
		if key {
			lastKey = now
			p.keyframes++
		}
		payloads := p.stream.Frame(key)
		ts := uint32(now.Sub(start) * 90000 / time.Second)
		for i, pl := range payloads {
			pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload = seq, ts, i == len(payloads)-1, pl
			if err := p.track.WriteRTP(pkt); err != nil {
				return err
			}
			seq++
			p.packets++
			p.bytes += int64(len(pl))
		}
		p.frames++
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

// close ends the connection and waits for the RTCP reader.
func (p *publisher) close() {
	_ = p.pc.Close()
	p.rtcpDone.Wait()
}

func (p *publisher) report(sent time.Duration, err error) *PublisherReport {
	r := &PublisherReport{
		Frames: p.frames, Keyframes: p.keyframes, KeyframesOnRequest: p.onRequest,
		PLIs: p.plis.Load(), Packets: p.packets,
	}
	if s := sent.Seconds(); s > 0 {
		r.MissedFrames = max(0, int64(sent/p.stream.FrameInterval())-p.frames)
		r.PacketsPerS = float64(p.packets) / s
		r.KbitPerS = float64(p.bytes) * 8 / 1000 / s
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
