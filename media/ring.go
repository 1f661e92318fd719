package media

import "sync"

// maxPacket is the largest RTP packet the forwarder keeps; larger ones are dropped.
const maxPacket = 1500

// rtpInfo is what the forwarder needs from an RTP header; parsed without allocating.
type rtpInfo struct {
	seq     uint16
	ts      uint32
	ssrc    uint32
	pt      uint8
	marker  bool
	padding bool
	hdrLen  int // payload (with any padding) starts here
}

// parseRTP reads the fixed header, CSRCs and extension length of an RTP packet.
func parseRTP(b []byte) (rtpInfo, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpInfo{}, false
	}
	h := rtpInfo{
		padding: b[0]&0x20 != 0,
		marker:  b[1]&0x80 != 0,
		pt:      b[1] & 0x7f,
		seq:     uint16(b[2])<<8 | uint16(b[3]),
		ts:      uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7]),
		ssrc:    uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11]),
		hdrLen:  12 + 4*int(b[0]&0x0f),
	}
	if b[0]&0x10 != 0 { // extension: profile(16) length(16, in 32-bit words)
		if len(b) < h.hdrLen+4 {
			return rtpInfo{}, false
		}
		words := int(b[h.hdrLen+2])<<8 | int(b[h.hdrLen+3])
		h.hdrLen += 4 + 4*words
	}
	if h.hdrLen > len(b) {
		return rtpInfo{}, false
	}
	return h, true
}

// payloadOf returns the packet's payload without padding (for inspection only: the
// forwarder sends payload and padding as they came).
func payloadOf(h rtpInfo, b []byte) []byte {
	p := b[h.hdrLen:]
	if h.padding && len(p) > 0 {
		n := int(p[len(p)-1])
		if n > len(p) {
			return nil
		}
		p = p[:len(p)-n]
	}
	return p
}

// packetRing keeps a publisher track's recent packets once, for every viewer:
// slot = sequence number mod size. The forwarder goroutine is its only writer; NACK
// handlers copy packets out under mu.
type packetRing struct {
	mask uint16

	mu    sync.RWMutex
	slots []ringSlot
	data  []byte // len(slots) * maxPacket
}

type ringSlot struct {
	info  rtpInfo
	n     int // packet length; 0 = empty
	valid bool
}

func newPacketRing(size int) *packetRing {
	if size > 1<<15 {
		size = 1 << 15
	}
	return &packetRing{
		mask:  uint16(size - 1),
		slots: make([]ringSlot, size),
		data:  make([]byte, size*maxPacket),
	}
}

// put stores a packet and returns the stored copy, which stays unchanged until the
// ring wraps; only the forwarder goroutine (the writer) may use it without mu.
func (r *packetRing) put(h rtpInfo, pkt []byte) []byte {
	i := int(h.seq & r.mask)
	r.mu.Lock()
	buf := r.data[i*maxPacket : i*maxPacket+len(pkt)]
	copy(buf, pkt)
	r.slots[i] = ringSlot{info: h, n: len(pkt), valid: true}
	r.mu.Unlock()
	return buf
}

// get copies the packet with sequence number seq into dst and returns its header
// info and the copy, or false when the ring no longer holds it.
func (r *packetRing) get(seq uint16, dst []byte) (rtpInfo, []byte, bool) {
	i := int(seq & r.mask)
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.slots[i]
	if !s.valid || s.info.seq != seq {
		return rtpInfo{}, nil, false
	}
	dst = append(dst[:0], r.data[i*maxPacket:i*maxPacket+s.n]...)
	return s.info, dst, true
}
