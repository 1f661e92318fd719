package media

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// downTrack is one viewer's copy of one publisher track: a webrtc.TrackLocal that
// holds no packets, only what makes the shared packets this viewer's (SSRC, payload
// type, sequence and timestamp offsets).
type downTrack struct {
	// set in newDownTrack
	f         *forwarder
	id        string
	streamID  string
	writeRTCP func([]rtcp.Packet) error // the viewer's connection's

	bindMu    sync.Mutex // guards the fields set in Bind and armWanted
	bound     bool
	armWanted bool // the viewer's connection is up
	ssrc      uint32
	pt        uint8
	w         webrtc.TrackLocalWriter

	joined time.Time // the WHEP request's time, for the join-to-keyframe histogram

	// owned by the forwarder goroutine
	started  bool
	startSeq uint16 // publisher sequence number of the first packet sent
	seqDelta uint16 // publisher seq - viewer seq
	tsDelta  uint32 // publisher ts - viewer ts
	hdr      rtp.Header
	out      webrtc.TrackLocalWriter

	// published by the forwarder goroutine when it starts; read by the RTCP loop
	mapping atomic.Pointer[seqMapping]

	// owned by the RTCP loop
	nackHdr rtp.Header
	nackBuf []byte
}

// seqMapping is a started viewer's rewrite, for the NACK path.
type seqMapping struct {
	startSeq, seqDelta uint16
	tsDelta            uint32
	ssrc               uint32
	pt                 uint8
	w                  webrtc.TrackLocalWriter
}

func newDownTrack(f *forwarder, id, streamID string, writeRTCP func([]rtcp.Packet) error) *downTrack {
	return &downTrack{f: f, id: id, streamID: streamID, writeRTCP: writeRTCP, joined: time.Now()}
}

// relaySenderReport gives the viewer the publisher's sender report in this viewer's
// terms (its SSRC and RTP timestamps), which players need to synchronise audio and
// video.
func (d *downTrack) relaySenderReport(sr *rtcp.SenderReport) {
	mp := d.mapping.Load()
	if mp == nil || d.writeRTCP == nil {
		return
	}
	_ = d.writeRTCP([]rtcp.Packet{&rtcp.SenderReport{
		SSRC: mp.ssrc, NTPTime: sr.NTPTime, RTPTime: sr.RTPTime - mp.tsDelta,
		PacketCount: sr.PacketCount, OctetCount: sr.OctetCount,
	}})
}

// errCodecMismatch is returned by Bind when the viewer cannot receive the publisher's codec.
var errCodecMismatch = errors.New("media: viewer does not support the publisher's codec")

// Bind picks the viewer's payload type for the publisher's codec.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := matchCodec(d.f.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, errCodecMismatch
	}
	d.bindMu.Lock()
	d.bound = true
	d.ssrc = uint32(ctx.SSRC())
	d.pt = uint8(c.PayloadType)
	d.w = ctx.WriteStream()
	armNow := d.armWanted
	d.bindMu.Unlock()
	if armNow {
		d.f.arm(d)
	}
	return c, nil
}

// Unbind stops forwarding to this viewer.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.f.remove(d)
	d.bindMu.Lock()
	d.bound = false
	d.bindMu.Unlock()
	return nil
}

// ID, RID, StreamID and Kind describe the track in the viewer's SDP.
func (d *downTrack) ID() string                { return d.id }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.f.media }

// matchCodec finds the viewer's codec for the publisher's: same MIME type, and for
// H.264 the same packetization mode, preferring the same profile.
func matchCodec(pub webrtc.RTPCodecParameters, viewer []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	best, score := webrtc.RTPCodecParameters{}, 0
	for _, c := range viewer {
		if !strings.EqualFold(c.MimeType, pub.MimeType) || c.ClockRate != pub.ClockRate {
			continue
		}
		s := 1
		if strings.EqualFold(pub.MimeType, webrtc.MimeTypeH264) {
			if fmtpValue(c.SDPFmtpLine, "packetization-mode") != fmtpValue(pub.SDPFmtpLine, "packetization-mode") {
				continue
			}
			if strings.EqualFold(profileOf(c.SDPFmtpLine), profileOf(pub.SDPFmtpLine)) {
				s = 3
			} else {
				s = 2
			}
		}
		if s > score {
			best, score = c, s
		}
	}
	return best, score > 0
}

func fmtpValue(line, key string) string {
	for kv := range strings.SplitSeq(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	if key == "packetization-mode" {
		return "0"
	}
	return ""
}

// profileOf is the profile part (profile_idc, constraint flags) of profile-level-id.
func profileOf(fmtp string) string {
	p := fmtpValue(fmtp, "profile-level-id")
	if len(p) < 4 {
		return p
	}
	return p[:4]
}

// arm is called when the viewer's connection is up; forwarding starts once the track
// is also bound.
func (d *downTrack) arm() {
	d.bindMu.Lock()
	d.armWanted = true
	bound := d.bound
	d.bindMu.Unlock()
	if bound {
		d.f.arm(d)
	}
}

// forward results.
const (
	fwdSkipped = iota
	fwdWaiting
	fwdSent
)

// forward writes one shared packet to this viewer. Called only by the forwarder
// goroutine; payload is read-only.
func (d *downTrack) forward(h rtpInfo, payload []byte, keyStart bool) int {
	if !d.started {
		if !keyStart {
			return fwdWaiting
		}
		d.bindMu.Lock()
		ssrc, pt, w := d.ssrc, d.pt, d.w
		d.bindMu.Unlock()
		seqDelta := h.seq - uint16(rand.Uint32())
		tsDelta := h.ts - rand.Uint32()
		d.hdr = rtp.Header{Version: 2, PayloadType: pt, SSRC: ssrc}
		d.hdr.Padding, d.hdr.Marker = h.padding, h.marker
		d.hdr.SequenceNumber, d.hdr.Timestamp = h.seq-seqDelta, h.ts-tsDelta
		n, err := w.WriteRTP(&d.hdr, payload)
		if err != nil || n == 0 {
			return fwdWaiting // SRTP not ready yet: wait for the next keyframe
		}
		d.started, d.startSeq, d.seqDelta, d.tsDelta, d.out = true, h.seq, seqDelta, tsDelta, w
		d.mapping.Store(&seqMapping{startSeq: h.seq, seqDelta: seqDelta, tsDelta: tsDelta, ssrc: ssrc, pt: pt, w: w})
		if d.f.kind != codecAudio {
			d.f.m.joinToKeyframe.Observe(time.Since(d.joined).Seconds())
		}
		return fwdSent
	}
	if int16(h.seq-d.startSeq) < 0 {
		return fwdSkipped // older than this viewer's first packet
	}
	d.hdr.Padding, d.hdr.Marker = h.padding, h.marker
	d.hdr.SequenceNumber, d.hdr.Timestamp = h.seq-d.seqDelta, h.ts-d.tsDelta
	if _, err := d.out.WriteRTP(&d.hdr, payload); err != nil {
		return fwdSkipped
	}
	return fwdSent
}

// readRTCP drains the viewer's RTCP for this track until the sender stops: NACKs are
// served from the shared ring, PLI/FIR become (merged) keyframe requests to the
// publisher, receiver reports feed the loss histogram.
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	drainRTCP(sender.Read, func(p rtcp.Packet) {
		switch p := p.(type) {
		case *rtcp.TransportLayerNack:
			for _, pair := range p.Nacks {
				pair.Range(func(seq uint16) bool {
					d.serveNACK(seq)
					return true
				})
			}
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			d.f.m.keyframeAsks.Inc()
			d.f.kf.request()
		case *rtcp.ReceiverReport:
			for _, r := range p.Reports {
				d.f.m.fractionLost.Observe(float64(r.FractionLost) / 256)
			}
		}
	})
}

// serveNACK resends one packet, named by the viewer's sequence number, from the
// shared ring.
func (d *downTrack) serveNACK(viewerSeq uint16) {
	mp := d.mapping.Load()
	if mp == nil {
		return
	}
	seq := viewerSeq + mp.seqDelta
	if int16(seq-mp.startSeq) < 0 {
		return
	}
	h, pkt, ok := d.f.ring.get(seq, d.nackBuf)
	if !ok {
		d.f.m.nacksMissed.Inc()
		return
	}
	d.nackBuf = pkt
	d.nackHdr = rtp.Header{
		Version: 2, Padding: h.padding, Marker: h.marker, PayloadType: mp.pt,
		SequenceNumber: viewerSeq, Timestamp: h.ts - mp.tsDelta, SSRC: mp.ssrc,
	}
	if _, err := mp.w.WriteRTP(&d.nackHdr, pkt[h.hdrLen:]); err == nil {
		d.f.m.nacksServed.Inc()
	}
}
