// Package rtpsynth makes synthetic H.264 video as RTP payloads, for the media
// benchmarks and the load generator's WHIP publisher: nobody decodes it, but it is
// packetised as a real encoder's stream would be (RFC 6184, packetization-mode 1), so
// a forwarder's keyframe detection and a viewer's start see real keyframes.
//
// A keyframe is a STAP-A packet with SPS and PPS followed by the IDR slice in FU-A
// fragments; any other frame is a non-IDR slice in FU-A fragments. Every fragment
// carries PacketSize bytes of payload, and each frame gets as many as keep the stream
// at Bitrate (7 or 8 at the defaults: 1.8 Mbit/s, 30 frames/s, 1022 bytes ≈ 220
// packets/s).
package rtpsynth

import (
	"encoding/binary"
	"time"
)

// H264Config sets up a synthetic stream. The zero value is the 720p30 stream.
type H264Config struct {
	// Bitrate of the slices, bits/s. Default 1,800,000.
	Bitrate int
	// FPS is frames per second. Default 30.
	FPS int
	// PacketSize is the RTP payload size of every slice fragment, bytes (at least 64).
	// Default 1022.
	PacketSize int
}

// H264 is one synthetic stream. It is not safe for concurrent use.
type H264 struct {
	// set in NewH264
	frameBytes float64
	size       int
	fps        int

	// owned by the caller of Frame
	owed  float64 // slice bytes the stream is behind its bitrate
	frame uint32
	bufs  [][]byte
	out   [][]byte
}

// NAL unit types and headers (RFC 6184, H.264 table 7-1).
const (
	nalIDR    = 5
	nalNonIDR = 1
	nalSPS    = 7
	nalPPS    = 8
	nalSTAPA  = 24
	nalFUA    = 28
	nri3      = 0x60 // nal_ref_idc 3: SPS, PPS, IDR
	nri2      = 0x40
)

// sps and pps are a Constrained Baseline 3.1 (42e01f) parameter set pair as an encoder
// would send for 1280×720; only their headers matter to a forwarder.
var (
	sps = []byte{nri3 | nalSPS, 0x42, 0xe0, 0x1f, 0x8d, 0x68, 0x05, 0x00, 0x5b, 0xa1, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x8f, 0x14, 0x2a}
	pps = []byte{nri3 | nalPPS, 0xce, 0x3c, 0x80}
)

// NewH264 returns a stream at cfg's rate.
func NewH264(cfg H264Config) *H264 {
	if cfg.Bitrate <= 0 {
		cfg.Bitrate = 1_800_000
	}
	if cfg.FPS <= 0 {
		cfg.FPS = 30
	}
	if cfg.PacketSize <= 0 {
		cfg.PacketSize = 1022
	}
	cfg.PacketSize = max(cfg.PacketSize, 64)
	return &H264{
		frameBytes: float64(cfg.Bitrate) / 8 / float64(cfg.FPS),
		size:       cfg.PacketSize,
		fps:        cfg.FPS,
	}
}

// FrameInterval is the time between two frames.
func (s *H264) FrameInterval() time.Duration { return time.Second / time.Duration(s.fps) }

// Frame returns the RTP payloads of the next frame, a keyframe when key is set, in
// sending order; the last one ends the frame (the RTP marker goes on it). The slices
// are reused by the next call. Each slice starts with the frame's number, so frames
// differ.
func (s *H264) Frame(key bool) [][]byte {
	s.owed += s.frameBytes
	n := max(1, int(s.owed/float64(s.size)+0.5))
	s.owed -= float64(n * s.size)
	s.out = s.out[:0]
	if key {
		stap := s.buf(len(s.out), 1+2+len(sps)+2+len(pps))
		stap[0] = nri3 | nalSTAPA
		binary.BigEndian.PutUint16(stap[1:], uint16(len(sps)))
		copy(stap[3:], sps)
		binary.BigEndian.PutUint16(stap[3+len(sps):], uint16(len(pps)))
		copy(stap[5+len(sps):], pps)
		s.out = append(s.out, stap)
	}
	nal, nri := byte(nalNonIDR), byte(nri2)
	if key {
		nal, nri = nalIDR, nri3
	}
	for i := range n {
		p := s.buf(len(s.out), s.size)
		p[0] = nri | nalFUA // FU indicator
		p[1] = nal          // FU header: S, E, R, type
		if i == 0 {
			p[1] |= 0x80
			// The frame number, 7 bits a byte with the top bit set: no zero bytes,
			// so no start code emulation.
			for j := range 4 {
				p[2+j] = 0x80 | byte(s.frame>>(7*(3-j)))
			}
		}
		if i == n-1 {
			p[1] |= 0x40
		}
		s.out = append(s.out, p)
	}
	s.frame++
	return s.out
}

// buf returns reusable buffer i with length n.
func (s *H264) buf(i, n int) []byte {
	for len(s.bufs) <= i {
		s.bufs = append(s.bufs, nil)
	}
	if cap(s.bufs[i]) < n {
		b := make([]byte, max(n, s.size))
		for j := range b {
			b[j] = 0x5a // slice data: any bytes without a start code
		}
		s.bufs[i] = b
	}
	s.bufs[i] = s.bufs[i][:n]
	return s.bufs[i]
}
