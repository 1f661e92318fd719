package media

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a TrackLocalWriter that keeps what a viewer was sent.
type recorder struct{ pkts []rtp.Packet }

func (r *recorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	r.pkts = append(r.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return 12 + len(payload), nil
}
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }

func testPacket(seq uint16, ts uint32, payload ...byte) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: ts, SSRC: 1}, Payload: payload}).Marshal()
	return b
}

// armedTrack is a started-from-scratch downTrack on f writing to a recorder.
func armedTrack(t *testing.T, f *forwarder, ssrc uint32) (*downTrack, *recorder) {
	t.Helper()
	rec := &recorder{}
	d := newDownTrack(f, "video", "s", nil)
	d.bound, d.ssrc, d.pt, d.w = true, ssrc, 96, rec
	f.arm(d)
	return d, rec
}

// TestForwarderRewrite: a viewer starts at the first packet of a keyframe, never at
// a late packet, sees its own SSRC/payload type and a gapless sequence, and gets
// NACKed packets again from the shared ring.
func TestForwarderRewrite(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, PayloadType: 102}
	f := newForwarder(codec, webrtc.RTPCodecTypeVideo, nil, Config{}.withDefaults(), m, nil)
	defer f.close()

	f.forward(testPacket(10, 1000, 0x7c, 0x85)) // IDR start, before anyone watches
	f.forward(testPacket(11, 1000, 0x7c, 0x45))
	d, rec := armedTrack(t, f, 777)
	f.forward(testPacket(12, 4000, 0x41))                                     // delta frame: not a start
	f.forward(testPacket(10, 1000, 0x7c, 0x85))                               // retransmitted IDR start: late, not a start
	f.forward(testPacket(13, 7000, 0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce)) // SPS/PPS: start
	f.forward(testPacket(14, 7000, 0x7c, 0x85))                               // IDR of the same frame
	f.forward(testPacket(16, 10000, 0x41))                                    // 15 lost upstream
	f.forward(testPacket(15, 10000, 0x41))                                    // 15 arrives late

	if len(rec.pkts) != 4 {
		t.Fatalf("viewer got %d packets, want 4", len(rec.pkts))
	}
	first := rec.pkts[0]
	if first.Payload[0] != 0x78 {
		t.Errorf("viewer started on payload %x, want the SPS/PPS STAP-A", first.Payload)
	}
	for i, p := range rec.pkts {
		if p.SSRC != 777 || p.PayloadType != 96 {
			t.Errorf("packet %d: SSRC %d PT %d, want 777 96", i, p.SSRC, p.PayloadType)
		}
	}
	// Sequence numbers keep the publisher's spacing: 13, 14, 16, 15 → s, s+1, s+3, s+2.
	s := first.SequenceNumber
	for i, want := range []uint16{s, s + 1, s + 3, s + 2} {
		if got := rec.pkts[i].SequenceNumber; got != want {
			t.Errorf("packet %d: seq %d, want %d", i, got, want)
		}
	}
	if d := rec.pkts[2].Timestamp - first.Timestamp; d != 3000 {
		t.Errorf("timestamp step %d, want 3000", d)
	}

	// NACK for the viewer's second packet: resent from the ring with its header.
	d.serveNACK(s + 1)
	d.serveNACK(s - 1) // before the viewer's start: ignored
	if len(rec.pkts) != 5 {
		t.Fatalf("after NACKs: %d packets, want 5", len(rec.pkts))
	}
	if re := rec.pkts[4]; re.SequenceNumber != s+1 || re.SSRC != 777 || re.Timestamp != first.Timestamp || re.Payload[1] != 0x85 {
		t.Errorf("retransmission %+v, want seq %d of the IDR packet", re.Header, s+1)
	}
	if got := metricValue(t, m.nacksServed); got != 1 {
		t.Errorf("NACKs served = %v, want 1", got)
	}
}

// TestForwarderStartsAfterAUD: a frame that begins with an access unit delimiter in a
// packet of its own (x264's default, as GStreamer's rtph264pay sends it) is a start
// at its SPS; a delta frame led by an AUD is not.
func TestForwarderStartsAfterAUD(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, PayloadType: 102}
	f := newForwarder(codec, webrtc.RTPCodecTypeVideo, nil, Config{}.withDefaults(), m, nil)
	defer f.close()
	_, rec := armedTrack(t, f, 1)
	f.forward(testPacket(1, 1000, 0x09, 0x30)) // AUD
	f.forward(testPacket(2, 1000, 0x41, 0x9a)) // delta slice: not a start
	f.forward(testPacket(3, 4000, 0x09, 0x10)) // AUD
	f.forward(testPacket(4, 4000, 0x06, 0x05)) // SEI
	f.forward(testPacket(5, 4000, 0x67, 0x42)) // SPS: the start
	f.forward(testPacket(6, 4000, 0x68, 0xce)) // PPS
	f.forward(testPacket(7, 4000, 0x65, 0x88)) // IDR
	if len(rec.pkts) != 3 || rec.pkts[0].Payload[0] != 0x67 {
		t.Fatalf("viewer got %d packets starting with %x, want 3 from the SPS", len(rec.pkts), rec.pkts[0].Payload)
	}
}

// discard is a TrackLocalWriter that drops everything.
type discard struct{}

func (discard) WriteRTP(h *rtp.Header, payload []byte) (int, error) { return 12 + len(payload), nil }
func (discard) Write(b []byte) (int, error)                         { return len(b), nil }

// TestForwardAllocs: forwarding a packet to started viewers allocates nothing.
func TestForwardAllocs(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, PayloadType: 102}
	f := newForwarder(codec, webrtc.RTPCodecTypeVideo, nil, Config{}.withDefaults(), m, nil)
	defer f.close()
	for range 50 {
		d := newDownTrack(f, "video", "s", nil)
		d.bound, d.ssrc, d.pt, d.w = true, 1, 96, discard{}
		f.arm(d)
	}
	f.forward(testPacket(1, 0, 0x67, 0x42)) // SPS: everyone starts
	pkt := testPacket(2, 3000, append([]byte{0x7c, 0x01}, make([]byte, 1000)...)...)
	seq := uint16(2)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		f.forward(pkt)
	})
	if allocs != 0 {
		t.Errorf("forward allocates %v times per packet", allocs)
	}
}
