package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// listenICE binds the one ICE UDP port on every address that will be offered as a
// candidate and returns the mux over those sockets, and the port.
func listenICE(cfg Config, lf logging.LoggerFactory) (ice.UDPMux, int, error) {
	addrs, err := iceAddresses(cfg.ICEAddresses)
	if err != nil {
		return nil, 0, err
	}
	port := cfg.UDPPort
	var muxes []ice.UDPMux
	closeAll := func() {
		for _, m := range muxes {
			_ = m.Close()
		}
	}
	for _, a := range addrs {
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(port))))
		if err != nil {
			closeAll()
			return nil, 0, fmt.Errorf("media: ICE UDP port on %s: %w", a, err)
		}
		// Every viewer's packets leave through this socket: give bursts room.
		_ = conn.SetWriteBuffer(4 << 20)
		_ = conn.SetReadBuffer(4 << 20)
		if port == 0 {
			port = conn.LocalAddr().(*net.UDPAddr).Port
		}
		muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: lf.NewLogger("udpmux"), UDPConn: conn}))
	}
	if len(muxes) == 1 {
		return muxes[0], port, nil
	}
	return ice.NewMultiUDPMuxDefault(muxes...), port, nil
}

// iceAddresses parses the configured addresses, or lists the machine's up,
// non-loopback, non-link-local interface addresses when none are configured.
func iceAddresses(conf []string) ([]netip.Addr, error) {
	var out []netip.Addr
	if len(conf) > 0 {
		for _, s := range conf {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("media: ICE address %q: %w", s, err)
			}
			out = append(out, a.Unmap())
		}
		return out, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("media: list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		ias, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ia := range ias {
			pfx, err := netip.ParsePrefix(ia.String())
			if err != nil {
				continue
			}
			a := pfx.Addr().Unmap()
			if a.IsLoopback() || a.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("media: no interface address to offer as ICE candidate; set ICEAddresses")
	}
	return out, nil
}

// settingEngine is shared by publishers and viewers: one UDP mux, no mDNS, no TCP,
// candidates only on the configured addresses.
func settingEngine(cfg Config, mux ice.UDPMux, lf logging.LoggerFactory) (webrtc.SettingEngine, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = lf
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A peer that stops answering is disconnected after 5 s and failed (its session
	// ended, a publisher's room offline) after 15 s.
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	addrs, err := iceAddresses(cfg.ICEAddresses)
	if err != nil {
		return se, err
	}
	allowed := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		allowed[a] = true
		if a.IsLoopback() {
			se.SetIncludeLoopbackCandidate(true)
		}
	}
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && allowed[a.Unmap()]
	})
	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			return se, fmt.Errorf("media: public IPs: %w", err)
		}
	}
	return se, nil
}

// registerCodecs registers H.264 (the usual profiles, packetization-mode 1), VP8 and
// Opus. No RTX: retransmissions are sent on the media SSRC.
func registerCodecs(m *webrtc.MediaEngine) error {
	// Every video codec asks for retransmissions with NACK, keyframes with PLI or FIR.
	videoFeedback := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	}
	video := []struct {
		pt   webrtc.PayloadType
		mime string
		fmtp string
	}{
		{102, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{104, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
		{106, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"},
		{108, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"},
		{96, webrtc.MimeTypeVP8, ""},
	}
	for _, v := range video {
		err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: v.mime, ClockRate: 90000, SDPFmtpLine: v.fmtp, RTCPFeedback: videoFeedback,
			},
			PayloadType: v.pt,
		}, webrtc.RTPCodecTypeVideo)
		if err != nil {
			return err
		}
	}
	return m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio)
}

// newAPIs builds the publisher API (Pion's default interceptors: NACK generation,
// receiver reports, TWCC feedback, which a browser's encoder needs to pick its
// bitrate; one set per publisher is cheap) and the viewer API (no interceptors: the
// forwarder does NACK and keyframes itself, once for all viewers).
func newAPIs(se webrtc.SettingEngine) (pub, view *webrtc.API, err error) {
	pm := &webrtc.MediaEngine{}
	if err := registerCodecs(pm); err != nil {
		return nil, nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(pm, reg); err != nil {
		return nil, nil, err
	}
	pub = webrtc.NewAPI(webrtc.WithMediaEngine(pm), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))

	vm := &webrtc.MediaEngine{}
	if err := registerCodecs(vm); err != nil {
		return nil, nil, err
	}
	view = webrtc.NewAPI(webrtc.WithMediaEngine(vm), webrtc.WithSettingEngine(se),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return pub, view, nil
}
